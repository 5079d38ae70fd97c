// A Cloudflare Queues producer for the Pyodide harness: the binding (`send`, `sendBatch`) with
// Queues' limits (message and batch sizes, delays, content types), and what the queue holds,
// each message as its consumer would get it (`pending`). Nothing consumes it: the harness
// hands the consumer handler its batches itself (bindings.mjs `createBatch`).

const MAX_MESSAGE_BYTES = 128 * 1024;
const MAX_BATCH_MESSAGES = 100;
const MAX_BATCH_BYTES = 256 * 1024;
const MAX_DELAY_SECONDS = 43200;

function checkDelay(delay) {
  if (!Number.isInteger(delay) || delay < 0 || delay > MAX_DELAY_SECONDS) {
    throw new TypeError(`delaySeconds must be an integer from 0 to ${MAX_DELAY_SECONDS}, got ${delay}`);
  }
  return delay;
}

// What `send` stores: the body as the consumer will see it (structured clone for "json"
// and "v8", text for "text", bytes for "bytes"), and its serialized size for the limits.
function encodeBody(body, contentType) {
  switch (contentType) {
    case "json": {
      const text = JSON.stringify(body);
      if (text === undefined) throw new TypeError("Message body is not JSON-serializable");
      return { body: JSON.parse(text), size: new TextEncoder().encode(text).length };
    }
    case "text":
      if (typeof body !== "string") throw new TypeError("contentType 'text' requires a string body");
      return { body, size: new TextEncoder().encode(body).length };
    case "bytes": {
      if (!(body instanceof ArrayBuffer || ArrayBuffer.isView(body))) {
        throw new TypeError("contentType 'bytes' requires an ArrayBuffer or typed array");
      }
      const copy = new Uint8Array(ArrayBuffer.isView(body) ? body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) : body.slice(0));
      return { body: copy.buffer, size: copy.byteLength };
    }
    case "v8": {
      const copy = structuredClone(body);
      return { body: copy, size: new TextEncoder().encode(JSON.stringify(copy) ?? "").length };
    }
    default:
      throw new TypeError(`Unknown contentType: ${contentType}`);
  }
}

let sequence = 0;

// The producer binding, as env.<binding>, named like workerd's class (the SDK wraps it by name).
class WorkerQueue {
  #queue;
  constructor(queue) {
    this.#queue = queue;
  }
  async send(body, options = {}) {
    this.#queue.enqueue([{ body, contentType: options?.contentType ?? "json", delaySeconds: options?.delaySeconds ?? 0 }]);
  }
  async sendBatch(messages, options = {}) {
    const list = Array.from(messages ?? []);
    if (list.length > MAX_BATCH_MESSAGES) throw new TypeError(`sendBatch takes at most ${MAX_BATCH_MESSAGES} messages`);
    const batchDelay = options?.delaySeconds ?? 0;
    this.#queue.enqueue(
      list.map((m) => ({ body: m.body, contentType: m.contentType ?? "json", delaySeconds: m.delaySeconds ?? batchDelay })),
      MAX_BATCH_BYTES,
    );
  }
}

export class Queue {
  constructor(name) {
    this.name = name;
    this.pending = []; // {id, body, timestamp, attempts, visibleAt}
  }

  // The producer binding object, as env.<binding>.
  binding() {
    return new WorkerQueue(this);
  }

  enqueue(messages, byteLimit = Infinity) {
    const now = Date.now();
    let total = 0;
    const ready = messages.map(({ body, contentType, delaySeconds }) => {
      const delay = checkDelay(delaySeconds);
      const encoded = encodeBody(body, contentType);
      if (encoded.size > MAX_MESSAGE_BYTES) throw new TypeError(`Message too large: ${encoded.size} bytes (limit ${MAX_MESSAGE_BYTES})`);
      total += encoded.size;
      return { id: `msg-${++sequence}`, body: encoded.body, timestamp: new Date(now), attempts: 1, visibleAt: now + delay * 1000 };
    });
    if (total > byteLimit) throw new TypeError(`Batch too large: ${total} bytes (limit ${byteLimit})`);
    this.pending.push(...ready);
  }
}
