// PNG bytes for the AI model doubles (worker/local/ai_models.mjs): a minimal encoder (RGB, 8
// bits, no interlace) of a picture drawn from each request, so that they answer with real
// images, and a reader of an image's dimensions (PNG, JPEG, WebP) for their checks on
// reference images. Runs on workerd with
// nodejs_compat (the stand-in, worker/local/ai.mjs) and in Node (the Pyodide unit harness):
// Buffer, node:crypto and node:zlib only. Never deployed.
import { Buffer } from "node:buffer";
import { createHash, randomBytes } from "node:crypto";
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

// A picture drawn from `key` (the request's model and fields): a few rectangles, discs and
// slanted stripes over a horizontal gradient that starts at [r, g, b], their places, sizes and
// colours taken from the key's hash. Distinct requests give structurally distinct pictures, so
// that their perceptual fingerprints are unrelated (src/fluxgate/provenance/fingerprint.py:
// flat pictures, or ones that differ only in colour, would all look alike to it); the same
// request gives the same bytes. Rows are painted as spans of flat colour (Buffer.fill).
export function encodePng(width, height, [r, g, b], key = "") {
  const paint = picture(width, height, [r, g, b], key);
  return encodePngRows(width, height, (y) => paint(y));
}

// A PNG the size of a real generation (about 1.2 MB at 1024x768): half of each row noise,
// which deflate cannot shrink, half the picture of `key` (as encodePng draws it), so that the
// noise averages out of a small rendering and the picture's fingerprint shows through. On
// workerd randomness is only available while a request is handled, which is when the stand-in
// calls this.
export function noisyPng(width, height, key = "") {
  const paint = picture(width, height, [128, 128, 128], key);
  return encodePngRows(width, height, (y) => {
    const row = paint(y);
    const noise = randomBytes(row.length);
    for (let i = 1; i < row.length; i++) if (!((i >> 6) & 1)) row[i] = noise[i];
    return row;
  });
}

// sfc32, seeded with the SHA-256 of `key`: uniform numbers in [0, 1), the same for one key.
function generator(key) {
  const digest = createHash("sha256").update(String(key)).digest();
  let [a, b, c, d] = [0, 4, 8, 12].map((at) => digest.readUInt32LE(at));
  return () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (((c << 21) | (c >>> 11)) + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

// `row(y)`: a new Buffer, the filter byte (0) then the picture's row y as RGB.
function picture(width, height, start, key) {
  const random = generator(`${start.join(",")}\0${key}`);
  const between = (lo, hi) => lo + (hi - lo) * random();
  const below = (n) => Math.floor(random() * n);
  const colour = () => Buffer.from([below(256), below(256), below(256)]);
  const end = colour();
  const background = Buffer.alloc(1 + width * 3);
  for (let x = 0; x < width; x++) {
    const t = x / Math.max(1, width - 1);
    for (let k = 0; k < 3; k++) background[1 + x * 3 + k] = Math.floor(start[k] + (end[k] - start[k]) * t);
  }
  const shapes = Array.from({ length: 4 + below(4) }, () => {
    const fill = colour();
    const kind = below(3);
    if (kind === 1) {
      const radius = between(0.08, 0.3) * Math.min(width, height);
      const [cx, cy] = [between(0, width), between(0, height)];
      return {
        fill,
        spans(y) {
          const dy = y + 0.5 - cy;
          if (Math.abs(dy) >= radius) return [];
          const half = Math.sqrt(radius * radius - dy * dy);
          const [a, b] = [Math.max(0, Math.round(cx - half)), Math.min(width, Math.round(cx + half))];
          return a < b ? [[a, b]] : [];
        },
      };
    }
    const [left, top] = [below(width), below(height)];
    const right = Math.min(width, left + Math.max(1, Math.floor(between(0.15, 0.6) * width)));
    const bottom = Math.min(height, top + Math.max(1, Math.floor(between(0.15, 0.6) * height)));
    if (kind === 0) return { fill, spans: (y) => (y >= top && y < bottom ? [[left, right]] : []) };
    const period = Math.max(4, Math.floor(between(0.04, 0.15) * width));
    const slope = between(-2, 2);
    return {
      fill,
      spans(y) {
        if (y < top || y >= bottom) return [];
        const shift = (((Math.round(y * slope) % period) + period) % period) - period;
        const found = [];
        for (let a = left + shift; a < right; a += period) {
          const [lo, hi] = [Math.max(a, left), Math.min(a + Math.floor(period / 2), right)];
          if (lo < hi) found.push([lo, hi]);
        }
        return found;
      },
    };
  });
  return (y) => {
    const row = Buffer.from(background);
    for (const { fill, spans } of shapes) for (const [a, b] of spans(y)) row.fill(fill, 1 + a * 3, 1 + b * 3);
    return row;
  };
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
