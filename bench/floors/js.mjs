// The JS floor of the Worker benchmark: the least any Worker costs on this stack (the
// harness's proxy, workerd's HTTP, one isolate answering a small JSON). A request to the
// Worker that costs this much is the stack's cost, not the Worker's.
export default {
  fetch() {
    return new Response('{"ok":true}', { headers: { "content-type": "application/json" } });
  },
};
