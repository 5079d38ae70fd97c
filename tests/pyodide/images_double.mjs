// The Pyodide harness's double of the Cloudflare Images binding (wrangler.toml
// `[images] binding = ...`; tests/pyodide/images_harness.mjs binds it), encoding for real
// with sharp (libvips: the same codecs family Cloudflare's service uses, and what Miniflare's
// own local Images emulation runs on).
//
// Two halves, as in production:
// - The client, ported from workerd's src/cloudflare/internal/images-api.ts (checked at
//   workerd 6552d999, 2026-08-22): `input(stream)` returns a transformer at once and checks
//   nothing; `transform()` only records options; `output({format, quality, background})`
//   consumes the transformer (a second output() → ImagesError 9525), reads the source and
//   posts it to the service; an error answer becomes an ImagesError whose `code` is the
//   service's and whose message is `IMAGES_TRANSFORM_ERROR <code>: <text>`. A source that is
//   not a ReadableStream is taken for a text source (workerd's isTextSource is
//   `!(source instanceof ReadableStream)`), so a Uint8Array or ArrayBuffer handed to input()
//   makes output() reject with V8's TypeError (reading `options.font` of the bytes), not an
//   ImagesError. info() wraps any non-stream in a Blob (StreamableFormData.append), so
//   info() of a Uint8Array works, as in workerd.
// - The service (js.images.cloudflare.com), modelled here: Cloudflare's documented codes and
//   limits (developers.cloudflare.com/images/get-started/limits/ for remote images,
//   /images/reference/troubleshooting/ for the codes):
//     9412  the input is not an image (workerd's types: info() "throws 9412 if input is not
//           an image"); 9520 an image in a format the service does not take (Miniflare's);
//     9402  input over 100 MB; 9413 over 100 megapixels or a side over 12,000 px;
//     9401  invalid transform or output options (an unknown option too: the service's
//           handling of unknown keys is not documented, the double refuses them so that a
//           typo cannot pass unnoticed);
//     AVIF: at most 1,200 px a side; past it the service answers its best effort, modelled
//           as WebP (the answer's content-type says so), as the docs' "best-effort" codec
//           choice allows. Which codec the service falls back to is not documented.
//   Metadata: the binding has no `metadata` option; Cloudflare keeps only JPEG metadata by
//   default (and of it the copyright fields) and discards other formats'. The double writes
//   none at all (sharp's default), JPEG included.
//   Not modelled (a clear NotModelled error, never a silent no-op): draw(), text(), `hosted`,
//   rgb/rgba output, and the transform options other than width, height, fit, rotate, flip,
//   blur and background.
//
// The double's own: stats() (calls and what each asked), fail({code, message, count}) (the
// next calls answer that error, as an outage would), reset().
import sharp from "sharp";

const MAX_INPUT_BYTES = 100 * 1000 * 1000;
const MAX_AREA = 100 * 1000 * 1000;
const MAX_SIDE = 12000;
const MAX_AVIF_SIDE = 1200;
const OUTPUT_FORMATS = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "rgb", "rgba"];
const INPUT_FORMATS = { jpeg: "image/jpeg", png: "image/png", gif: "image/gif", webp: "image/webp", heif: "image/avif", svg: "image/svg+xml" };
const FITS = ["scale-down", "contain", "pad", "squeeze", "cover", "crop"];
const APPLIED = ["width", "height", "fit", "rotate", "flip", "blur", "background"];
// workerd's ImageTransform type, the options the service knows of.
const KNOWN = [...APPLIED, "border", "brightness", "contrast", "gamma", "segment", "gravity", "saturation", "sharpen", "trim"];

// workerd's ImagesErrorImpl: an Error with a numeric `code` (its name stays "Error").
export class ImagesErrorImpl extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

// The service's error answer, before the client turns it into an ImagesError.
class ServiceError extends Error {
  constructor(code, text) {
    super(`ERROR ${code}: ${text}`);
    this.code = code;
  }
}

class NotModelled extends Error {
  constructor(what) {
    super(`${what} is not modelled by the Images double (tests/pyodide/images_double.mjs)`);
  }
}

function isTextSource(source) {
  return !(source instanceof ReadableStream);
}

// workerd's serializeTextSource: on a Uint8Array `source.options` is undefined, so this
// throws V8's TypeError exactly where workerd's does.
function serializeTextSource(source) {
  const obj = { text: source.content, font: source.options.font };
  if (source.options.size !== undefined) obj.size = source.options.size;
  if (source.options.color !== undefined) obj.color = source.options.color;
  return JSON.stringify(obj);
}

async function readAll(source) {
  return new Uint8Array(await new Response(source).arrayBuffer());
}

// workerd's TransformationResultImpl over the service's answer.
class TransformationResultImpl {
  #response;
  constructor(response) {
    this.#response = response;
  }
  contentType() {
    const contentType = this.#response.headers.get("content-type");
    if (!contentType) throw new ImagesErrorImpl("IMAGES_TRANSFORM_ERROR 9523: No content-type on bindings response", 9523);
    return contentType;
  }
  image(options) {
    if (options?.encoding === "base64") throw new NotModelled("image({encoding: 'base64'})");
    return this.#response.body || new Blob().stream();
  }
  response(options) {
    const headers = new Headers(options?.headers);
    headers.set("content-type", this.contentType());
    return new Response(this.image(), { headers });
  }
}

class ImageTransformerImpl {
  #service;
  #source;
  #transforms = [];
  #consumed = false;
  constructor(service, source) {
    this.#service = service;
    this.#source = source;
  }
  transform(transform) {
    this.#transforms.push(transform);
    return this;
  }
  draw() {
    throw new NotModelled("draw()");
  }
  async output(options) {
    if (this.#consumed) {
      throw new ImagesErrorImpl("IMAGES_TRANSFORM_ERROR 9525: ImageTransformer consumed; you may only call .output() or draw a transformer once", 9525);
    }
    this.#consumed = true;
    if (isTextSource(this.#source)) {
      serializeTextSource(this.#source); // a Uint8Array throws here, as in workerd
      throw new NotModelled("text()");
    }
    // What the client posts: the transforms as JSON, the format as a string (form fields).
    const transforms = JSON.parse(JSON.stringify(this.#transforms));
    const request = {
      transforms,
      format: String(options?.format),
      quality: options?.quality,
      background: options?.background,
      anim: options?.anim,
    };
    try {
      return new TransformationResultImpl(await this.#service.transform(await readAll(this.#source), request));
    } catch (err) {
      if (err instanceof ServiceError) throw new ImagesErrorImpl(`IMAGES_TRANSFORM_${err.message}`.trim(), err.code);
      throw err;
    }
  }
}

function checkTransform(transform) {
  if (transform === null || typeof transform !== "object" || Array.isArray(transform)) {
    throw new ServiceError(9401, "Each transform must be an object");
  }
  for (const [key, value] of Object.entries(transform)) {
    if (!KNOWN.includes(key)) throw new ServiceError(9401, `Unknown transform option ${key}`);
    if (!APPLIED.includes(key)) throw new NotModelled(`the transform option ${key}`);
    if (key === "width" || key === "height") {
      if (!Number.isInteger(value) || value < 1 || value > MAX_SIDE) {
        throw new ServiceError(9401, `Invalid ${key} ${JSON.stringify(value)}: a whole number of pixels from 1 to ${MAX_SIDE}`);
      }
    } else if (key === "fit" && !FITS.includes(value)) {
      throw new ServiceError(9401, `Invalid fit ${JSON.stringify(value)}, expected one of ${FITS.join(", ")}`);
    } else if (key === "rotate" && ![0, 90, 180, 270].includes(value)) {
      throw new ServiceError(9401, `Invalid rotate ${JSON.stringify(value)}, expected 0, 90, 180 or 270`);
    } else if (key === "flip" && !["h", "v", "hv"].includes(value)) {
      throw new ServiceError(9401, `Invalid flip ${JSON.stringify(value)}, expected h, v or hv`);
    } else if (key === "blur" && (typeof value !== "number" || value < 1 || value > 250)) {
      throw new ServiceError(9401, `Invalid blur ${JSON.stringify(value)}, expected 1 to 250`);
    } else if (key === "background" && typeof value !== "string") {
      throw new ServiceError(9401, "Invalid background, expected a CSS color");
    }
  }
}

// Cloudflare's fit modes in sharp's terms (as Miniflare maps them).
function resizeOptions(transform) {
  const background = transform.background ?? (transform.fit === "pad" ? "#ffffff" : undefined);
  switch (transform.fit) {
    case "contain":
      return { fit: "inside", background };
    case "cover":
      return { fit: "cover", background };
    case "crop":
      return { fit: "cover", withoutEnlargement: true, background };
    case "pad":
      return { fit: "contain", background };
    case "squeeze":
      return { fit: "fill", background };
    default: // "scale-down", and the service's default
      return { fit: "inside", withoutEnlargement: true, background };
  }
}

// A pipeline's result as raw pixels, and a new pipeline over them.
async function pixels(pipeline) {
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  const raw = { width: info.width, height: info.height, channels: info.channels };
  return { info, pipeline: sharp(data, { raw, limitInputPixels: false }) };
}

// The service side: decodes, checks the limits, applies the transforms, encodes.
class ImagesService {
  constructor() {
    this.reset();
  }
  reset() {
    this.calls = [];
    this.failing = [];
  }
  // The next `count` calls (output or info) answer ERROR <code>: <message>.
  fail({ code = 9523, message = "Internal error", count = 1 } = {}) {
    for (let i = 0; i < count; i++) this.failing.push({ code, message });
  }
  stats() {
    return {
      outputs: this.calls.filter((c) => c.op === "output").length,
      infos: this.calls.filter((c) => c.op === "info").length,
      calls: this.calls.map((c) => ({ ...c })),
      scripted_failures: this.failing.length,
    };
  }
  #scripted() {
    const failure = this.failing.shift();
    if (failure) throw new ServiceError(failure.code, failure.message);
  }
  async #decode(bytes) {
    if (bytes.byteLength > MAX_INPUT_BYTES) throw new ServiceError(9402, "The image is too large (over 100 MB)");
    let metadata;
    try {
      metadata = await sharp(bytes, { limitInputPixels: false }).metadata();
    } catch {
      throw new ServiceError(9412, "Input is not an image");
    }
    const mime = INPUT_FORMATS[metadata.format];
    if (!mime) throw new ServiceError(9520, `Unsupported image type ${metadata.format}, expected one of: JPEG, SVG, PNG, WebP, GIF or AVIF`);
    if (mime !== "image/svg+xml") {
      if (!metadata.width || !metadata.height) throw new ServiceError(9412, "Input is not an image");
      if (metadata.width > MAX_SIDE || metadata.height > MAX_SIDE || metadata.width * metadata.height > MAX_AREA) {
        throw new ServiceError(9413, "The image exceeds the maximum image area of 100 megapixels or 12,000 pixels a side");
      }
    }
    return { mime, metadata };
  }
  async info(bytes) {
    const call = { op: "info", input_bytes: bytes.byteLength };
    this.calls.push(call);
    try {
      this.#scripted();
      const { mime, metadata } = await this.#decode(bytes);
      call.input_format = mime;
      if (mime === "image/svg+xml") return { format: mime };
      return { format: mime, fileSize: bytes.byteLength, width: metadata.width, height: metadata.height };
    } catch (err) {
      call.error = err?.code ?? String(err?.message ?? err);
      throw err;
    }
  }
  async transform(bytes, request) {
    const call = { op: "output", input_bytes: bytes.byteLength, transforms: request.transforms, format: request.format, quality: request.quality ?? null };
    this.calls.push(call);
    try {
      this.#scripted();
      for (const transform of request.transforms) checkTransform(transform);
      if (!OUTPUT_FORMATS.includes(request.format)) {
        throw new ServiceError(9401, `Unsupported output format ${request.format}, expected one of ${OUTPUT_FORMATS.join(", ")}`);
      }
      if (request.format === "rgb" || request.format === "rgba") throw new NotModelled(`output format ${request.format}`);
      const quality = request.quality;
      if (quality !== undefined && (!Number.isInteger(quality) || quality < 1 || quality > 100)) {
        throw new ServiceError(9401, `Invalid quality ${quality}, expected 1 to 100`);
      }
      const { mime, metadata } = await this.#decode(bytes);
      call.input_format = mime;
      call.input_size = [metadata.width ?? null, metadata.height ?? null];
      if (mime === "image/svg+xml") {
        // Cloudflare does not resize SVGs: the image comes back as it was.
        call.content_type = mime;
        return new Response(bytes, { headers: { "content-type": mime } });
      }
      // Each step on the decoded pixels (sharp resizes once per pipeline); no re-encoding
      // between steps, as a transformation service works on one decoded image.
      let image = await pixels(sharp(bytes, { limitInputPixels: false, autoOrient: true }));
      for (const transform of request.transforms) {
        let step = image.pipeline;
        if (transform.rotate) step = step.rotate(transform.rotate);
        if (transform.flip?.includes("h")) step = step.flop();
        if (transform.flip?.includes("v")) step = step.flip();
        image = await pixels(step);
        if (transform.width !== undefined || transform.height !== undefined) {
          image = await pixels(image.pipeline.resize(transform.width ?? null, transform.height ?? null, resizeOptions(transform)));
        }
        if (transform.blur !== undefined) image = await pixels(image.pipeline.blur(Math.max(0.3, transform.blur / 2)));
      }
      const size = image.info;
      let format = request.format;
      if (format === "image/avif" && Math.max(size.width, size.height) > MAX_AVIF_SIDE) format = "image/webp";
      let out = image.pipeline;
      if (request.background !== undefined && format === "image/jpeg") out = out.flatten({ background: request.background });
      const options = quality === undefined ? {} : { quality };
      const encoded = {
        "image/jpeg": () => out.jpeg(options),
        "image/png": () => out.png(),
        "image/gif": () => out.gif(),
        "image/webp": () => out.webp(options),
        "image/avif": () => out.avif(options),
      }[format]();
      const { data, info } = await encoded.toBuffer({ resolveWithObject: true });
      Object.assign(call, { content_type: format, output_bytes: data.byteLength, output_size: [info.width, info.height] });
      return new Response(new Uint8Array(data), { headers: { "content-type": format } });
    } catch (err) {
      call.error = err?.code ?? String(err?.message ?? err);
      throw err;
    }
  }
}

// The binding, named like workerd's class (the Workers SDK wraps `ImagesBindingImpl` by
// that name, as it does in production).
export class ImagesBindingImpl {
  #service = new ImagesService();
  get hosted() {
    const refuse = () => {
      throw new NotModelled("hosted images (env.<binding>.hosted)");
    };
    return { image: refuse, upload: refuse, list: refuse, createDirectUpload: refuse };
  }
  async info(stream, options) {
    if (options?.encoding === "base64") throw new NotModelled("info(..., {encoding: 'base64'})");
    // StreamableFormData.append: a non-stream value becomes a Blob part.
    const source = stream && typeof stream.getReader === "function" ? stream : new Blob([stream]).stream();
    try {
      return await this.#service.info(await readAll(source));
    } catch (err) {
      if (err instanceof ServiceError) throw new ImagesErrorImpl(`IMAGES_INFO_${err.message}`.trim(), err.code);
      throw err;
    }
  }
  input(stream, options) {
    if (options?.encoding === "base64") throw new NotModelled("input(..., {encoding: 'base64'})");
    return new ImageTransformerImpl(this.#service, stream);
  }
  text() {
    throw new NotModelled("text()");
  }
  // The double's own (not part of the binding).
  stats() {
    return this.#service.stats();
  }
  fail(failure) {
    this.#service.fail(failure);
  }
  reset() {
    this.#service.reset();
  }
}
