// PNG bytes for the AI model doubles (worker/local/ai_models.mjs): a minimal encoder (RGB, 8
// bits, no interlace) so that they answer with real images, and a reader of an image's
// dimensions (PNG, JPEG, WebP) for their checks on reference images. Runs on workerd with
// nodejs_compat (the stand-in, worker/local/ai.mjs) and in Node (the Pyodide unit harness):
// Buffer, node:crypto and node:zlib only. Never deployed.
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import { deflateSync } from "node:zlib";

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

// A flat picture: every row the same, red `r`, green a gradient from `g`, blue `b`.
export function encodePng(width, height, [r, g, b]) {
  const row = Buffer.alloc(1 + width * 3);
  for (let x = 0; x < width; x++) row.set([r, (g + x) & 0xff, b], 1 + x * 3);
  return encodePngRows(width, height, () => row);
}

// A PNG the size of a real generation (about 1.2 MB at 1024x768): half of each row noise,
// which deflate cannot shrink, half smooth gradients. On workerd randomness is only available
// while a request is handled, which is when the stand-in calls this.
export function noisyPng(width, height) {
  return encodePngRows(width, height, (y) => {
    const row = randomBytes(1 + width * 3);
    row[0] = 0; // filter: none
    for (let i = 1; i < row.length; i++) if ((i >> 6) & 1) row[i] = (i + y) & 0xff;
    return row;
  });
}

// An RGB PNG from `row(y)`: each row's filter byte (0) then width * 3 bytes.
function encodePngRows(width, height, row) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const raw = Buffer.concat(Array.from({ length: height }, (_, y) => row(y)));
  return Buffer.concat([SIGNATURE, chunk("IHDR", header), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

// {type, width, height} of a PNG (IHDR), JPEG (the first SOF) or WebP (VP8, VP8L, VP8X),
// or null when the bytes are none of them or too short to say.
export function imageSize(bytes) {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length >= 24 && b.subarray(0, 8).equals(SIGNATURE)) {
    return { type: "image/png", width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
  }
  if (b[0] === 0xff && b[1] === 0xd8) {
    for (let i = 2; i + 9 < b.length; ) {
      const marker = b[i + 1];
      if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
        return { type: "image/jpeg", height: b.readUInt16BE(i + 5), width: b.readUInt16BE(i + 7) };
      }
      i += 2 + b.readUInt16BE(i + 2);
    }
    return null;
  }
  if (b.length >= 30 && b.toString("latin1", 0, 4) === "RIFF" && b.toString("latin1", 8, 12) === "WEBP") {
    const kind = b.toString("latin1", 12, 16);
    if (kind === "VP8X") return { type: "image/webp", width: b.readUIntLE(24, 3) + 1, height: b.readUIntLE(27, 3) + 1 };
    if (kind === "VP8L") {
      const bits = b.readUInt32LE(21);
      return { type: "image/webp", width: (bits & 0x3fff) + 1, height: ((bits >> 14) & 0x3fff) + 1 };
    }
    if (kind === "VP8 ") return { type: "image/webp", width: b.readUInt16LE(26) & 0x3fff, height: b.readUInt16LE(28) & 0x3fff };
  }
  return null;
}
