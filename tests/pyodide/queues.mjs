// Cloudflare Queues for the Worker host: a producer binding with Queues' limits, and a
// consumer that delivers batches to the Worker's `queue` handler the way the platform does
// (max_batch_size / max_batch_timeout, per-message ack and retry with delay, the whole
// batch retried when the handler throws, max_retries then the dead-letter queue).

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

// The classes the consumer sees, named like workerd's (the Workers SDK wraps by class name).
class QueueMessage {
  #settle;
  constructor(m, settle) {
    this.id = m.id;
    this.timestamp = m.timestamp;
    this.body = m.body;
    this.attempts = m.attempts;
    this.#settle = settle;
  }
  ack() {
    this.#settle(this.id, { ack: true });
  }
  retry(options = {}) {
    this.#settle(this.id, { retry: options?.delaySeconds });
  }
}

class QueueController {
  #settleAll;
  constructor(queue, messages, settleAll) {
    this.queue = queue;
    this.messages = messages;
    this.#settleAll = settleAll;
  }
  ackAll() {
    this.#settleAll({ ack: true });
  }
  retryAll(options = {}) {
    this.#settleAll({ retry: options?.delaySeconds });
  }
}

// The producer binding, as env.<binding>.
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
  // consumer: {max_batch_size, max_batch_timeout, max_retries, retry_delay, dead_letter_queue}
  constructor(name, consumer = null, { log = console } = {}) {
    this.name = name;
    this.consumer = consumer;
    this.log = log;
    this.pending = []; // {id, body, timestamp, attempts, visibleAt}
    this.deadLetters = [];
    this.delivered = 0;
    this.handler = null;
    this.timer = null;
    this.running = 0;
    this.idleWaiters = [];
  }

  // The producer binding object handed to the Worker as env.<binding>.
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
    this.schedule();
  }

  // handler(batch) -> Promise: called with a MessageBatch; rejects if the handler threw.
  consume(handler) {
    this.handler = handler;
    this.schedule();
  }

  // (Re)arms the delivery timer for the earliest moment a batch is due: a full batch now, a
  // partial one max_batch_timeout after its first message became visible, delayed messages
  // when they become visible. Called on every send and after every delivery, so a new
  // message never waits behind a later timer.
  schedule() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.handler || !this.consumer) return;
    const now = Date.now();
    const visible = this.pending.filter((m) => m.visibleAt <= now);
    const size = this.consumer.max_batch_size ?? 10;
    let wait;
    if (visible.length >= size) wait = 0;
    else if (visible.length) wait = Math.min(...visible.map((m) => m.visibleAt)) + (this.consumer.max_batch_timeout ?? 5) * 1000 - now;
    else if (this.pending.length) wait = Math.min(...this.pending.map((m) => m.visibleAt)) - now;
    else return this.notifyIdle();
    this.timer = setTimeout(() => {
      this.timer = null;
      this.deliver().finally(() => this.schedule());
    }, Math.max(0, wait));
  }

  // Resolves once no batch is being delivered (the handler may still be running one).
  async quiesce() {
    while (this.running) await new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async deliver() {
    const now = Date.now();
    const size = this.consumer.max_batch_size ?? 10;
    const taken = this.pending.filter((m) => m.visibleAt <= now).slice(0, size);
    if (!taken.length) return;
    this.pending = this.pending.filter((m) => !taken.includes(m));
    const settled = new Map(); // id -> {ack} | {retry: delaySeconds}
    const settle = (id, outcome) => {
      if ("retry" in outcome) outcome = { retry: checkDelay(outcome.retry ?? this.consumer.retry_delay ?? 0) };
      settled.set(id, outcome);
    };
    const batch = new QueueController(
      this.name,
      taken.map((m) => new QueueMessage(m, settle)),
      (outcome) => taken.forEach((m) => settled.has(m.id) || settle(m.id, outcome)),
    );
    this.running++;
    let failed = false;
    try {
      await this.handler(batch);
    } catch (err) {
      failed = true;
      this.log.error(`queue ${this.name}: handler threw, retrying the batch's unsettled messages: ${err?.message ?? err}`);
    } finally {
      this.running--;
      this.notifyIdle();
    }
    for (const m of taken) {
      // Implicitly acknowledged when the handler returned; retried when it threw.
      const outcome = settled.get(m.id) ?? (failed ? { retry: this.consumer.retry_delay ?? 0 } : { ack: true });
      this.delivered++;
      if (outcome.ack) continue;
      if (m.attempts > (this.consumer.max_retries ?? 3)) {
        this.deadLetters.push({ id: m.id, body: m.body, attempts: m.attempts, queue: this.consumer.dead_letter_queue ?? null });
        continue;
      }
      this.pending.push({ ...m, attempts: m.attempts + 1, visibleAt: Date.now() + outcome.retry * 1000 });
    }
  }

  notifyIdle() {
    if (this.running) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  stats() {
    return { name: this.name, pending: this.pending.length, delivered: this.delivered, dead_letters: this.deadLetters.map(({ id, attempts, body }) => ({ id, attempts, body })) };
  }

  clear() {
    this.pending = [];
    this.deadLetters = [];
    this.schedule();
  }

  close() {
    clearTimeout(this.timer);
    this.timer = null;
    this.handler = null;
  }
}
