// predict.py's preprocessing, step for step, for the page: a picture's RGBA pixels -> the normalized 28x28
// input the model reads. Each function names the Python function it ports; pytest keeps the two in step
// (test_web.py: the same constants, the same digit read on the same picture files).
//
// Images are {data, width, height}: row-major pixels, Float32Array in [0, 1] unless said otherwise. Values are
// float32 as torch's are (Math.fround where a constant meets them), and medians are torch's lower median.

export const MEAN = 0.1307; // MNIST's pixel mean and standard deviation (data.py)
export const STD = 0.3081;
export const WORKING_SIDE = 1024;
export const MIN_SIDE = 8;
export const MAX_ASPECT = 100;
export const STROKE_WIDTHS = [1.93, 2.18, 3.11];
export const RULED_COVER = 0.95;
export const RULED_THICKNESS = 0.03;
export const INK_FLOOR = 0.03;

/** A picture the page cannot read; its message is shown as it is. */
export class NoDigit extends Error {}

const f32 = Math.fround;

/** Python's round(): halves go to the even neighbour. */
export function pyRound(x) {
  const floor = Math.floor(x);
  const rest = x - floor;
  if (rest !== 0.5) return Math.round(x);
  return floor % 2 === 0 ? floor : floor + 1;
}

/** shape_problem: why a picture of this shape cannot hold a digit, or null. */
export function shapeProblem(width, height) {
  if (Math.min(width, height) < MIN_SIDE || Math.max(width, height) > MAX_ASPECT * Math.min(width, height)) {
    return (
      `${width}x${height} pixels cannot hold a digit (a picture needs at least ${MIN_SIDE} pixels a side and ` +
      `at most ${MAX_ASPECT} times as long as it is wide)`
    );
  }
  return null;
}

// Selection and medians

/** The k-th smallest (0-based) of `values`: quickselect, for medians of a million pixels. It reorders `values`
 * unless `copy` (the default) asks for a copy to work on. */
function kthSmallest(values, k, copy = true) {
  const a = copy ? Float32Array.from(values) : values;
  let low = 0;
  let high = a.length - 1;
  while (low < high) {
    const pivot = a[(low + high) >> 1];
    let i = low;
    let j = high;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) high = j;
    else if (k >= i) low = i;
    else return a[k];
  }
  return a[k];
}

/** torch.median: the lower of the two middle values (of a copy, unless `copy` is false). */
function median(values, copy = true) {
  return kthSmallest(values, (values.length - 1) >> 1, copy);
}

// Pillow's resampling (Resample.c), ported exactly for 8-bit channels: two passes, coefficients in fixed point.

const PRECISION_BITS = 32 - 8 - 2;
const FILTERS = {
  box: { support: 0.5, at: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  lanczos: { support: 3, at: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

function sinc(x) {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

function coefficients(inSize, outSize, filter) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const count = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    const k = new Float64Array(count);
    let total = 0;
    for (let x = 0; x < count; x++) {
      k[x] = filter.at((x + xmin - center + 0.5) * (1 / filterScale));
      total += k[x];
    }
    for (let x = 0; x < count; x++) {
      const w = total !== 0 ? k[x] / total : k[x];
      weights[xx * ksize + x] = Math.trunc(w < 0 ? -0.5 + w * (1 << PRECISION_BITS) : 0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = count;
  }
  return { bounds, weights, ksize };
}

function clip8(sum) {
  if (sum >= 2 ** (PRECISION_BITS + 8)) return 255;
  if (sum <= 0) return 0;
  return Math.floor(sum / 2 ** PRECISION_BITS);
}

/** Image.resize for an 8-bit picture of `channels` interleaved channels (Uint8 data): Pillow's two passes. */
export function resize8(pixels, width, height, channels, outWidth, outHeight, filterName) {
  const filter = FILTERS[filterName];
  let data = pixels;
  let w = width;
  if (outWidth !== width) {
    const { bounds, weights, ksize } = coefficients(width, outWidth, filter);
    const out = new Uint8ClampedArray(outWidth * height * channels);
    for (let y = 0; y < height; y++) {
      for (let xx = 0; xx < outWidth; xx++) {
        const xmin = bounds[2 * xx];
        const count = bounds[2 * xx + 1];
        for (let c = 0; c < channels; c++) {
          let sum = 1 << (PRECISION_BITS - 1);
          for (let x = 0; x < count; x++) sum += data[(y * w + x + xmin) * channels + c] * weights[xx * ksize + x];
          out[(y * outWidth + xx) * channels + c] = clip8(sum);
        }
      }
    }
    data = out;
    w = outWidth;
  }
  if (outHeight !== height) {
    const { bounds, weights, ksize } = coefficients(height, outHeight, filter);
    const out = new Uint8ClampedArray(w * outHeight * channels);
    for (let yy = 0; yy < outHeight; yy++) {
      const ymin = bounds[2 * yy];
      const count = bounds[2 * yy + 1];
      for (let x = 0; x < w * channels; x++) {
        let sum = 1 << (PRECISION_BITS - 1);
        for (let y = 0; y < count; y++) sum += data[(y + ymin) * w * channels + x] * weights[yy * ksize + y];
        out[yy * w * channels + x] = clip8(sum);
      }
    }
    data = out;
  }
  return data;
}

// greyscale(): RGBA as the browser decoded it (orientation already applied) -> 8-bit grey, at most WORKING_SIDE

const mulDiv255 = (a, b) => {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
};

/** Image.resize of RGBA in Pillow: premultiplied by alpha (RGBa), resampled, divided back. */
function resizeRGBA(rgba, width, height, outWidth, outHeight, filterName) {
  const premultiplied = new Uint8ClampedArray(rgba.length);
  for (let i = 0; i < rgba.length; i += 4) {
    const a = rgba[i + 3];
    premultiplied[i] = mulDiv255(rgba[i], a);
    premultiplied[i + 1] = mulDiv255(rgba[i + 1], a);
    premultiplied[i + 2] = mulDiv255(rgba[i + 2], a);
    premultiplied[i + 3] = a;
  }
  const out = resize8(premultiplied, width, height, 4, outWidth, outHeight, filterName);
  for (let i = 0; i < out.length; i += 4) {
    const a = out[i + 3];
    for (let c = 0; c < 3; c++) out[i + c] = a === 0 ? 0 : Math.min(255, Math.trunc((255 * out[i + c]) / a));
  }
  return out;
}

/** flatten(): a drawing on a transparent canvas -> its alpha as black strokes on white; anything else with
 * transparency composited onto white (Pillow's alpha_composite, in its integer arithmetic); grey out. */
function flattenToGrey(rgba, count) {
  const grey = new Uint8ClampedArray(count);
  let minAlpha = 255;
  for (let i = 0; i < count; i++) minAlpha = Math.min(minAlpha, rgba[4 * i + 3]);
  if (minAlpha < 128 && isOneColourDrawing(rgba, count)) {
    for (let i = 0; i < count; i++) grey[i] = 255 - rgba[4 * i + 3];
    return grey;
  }
  for (let i = 0; i < count; i++) {
    let [r, g, b] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
    const a = rgba[4 * i + 3];
    if (a !== 255) {
      const outA255 = a * 255 + 255 * (255 - a);
      const coef1 = Math.trunc((a * 255 * 255 * (1 << 7)) / outA255);
      const coef2 = 255 * (1 << 7) - coef1;
      const over = (v) => {
        const t = v * coef1 + 255 * coef2 + (0x80 << 7);
        return (((t >> 8) + t) >> 8) >> 7;
      };
      [r, g, b] = [over(r), over(g), over(b)];
    }
    grey[i] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16; // Pillow's RGB -> L
  }
  return grey;
}

/** Whether the opaque pixels (alpha >= 128) are all about one colour: fewer than 2% over 48 levels away from
 * the median colour in some channel. */
function isOneColourDrawing(rgba, count) {
  const opaque = [[], [], []];
  for (let i = 0; i < count; i++) {
    if (rgba[4 * i + 3] >= 128) for (let c = 0; c < 3; c++) opaque[c].push(rgba[4 * i + c]);
  }
  const n = opaque[0].length;
  if (!n) return false;
  const medians = opaque.map((values) => {
    const sorted = Float64Array.from(values).sort();
    return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2; // numpy's median
  });
  let far = 0;
  for (let i = 0; i < n; i++) {
    if (opaque.some((values, c) => Math.abs(values[i] - medians[c]) > 48)) far++;
  }
  return far / n < 0.02;
}

/** greyscale: RGBA pixels (Uint8ClampedArray, as a canvas gives them) -> {data: grey Uint8, width, height}. */
export function greyscale(rgba, width, height) {
  const problem = shapeProblem(width, height);
  if (problem) throw new NoDigit(problem);
  const scale = WORKING_SIDE / Math.max(width, height);
  if (scale < 1) {
    const outWidth = Math.max(1, pyRound(width * scale));
    const outHeight = Math.max(1, pyRound(height * scale));
    rgba = resizeRGBA(rgba, width, height, outWidth, outHeight, "box");
    [width, height] = [outWidth, outHeight];
  }
  return { data: flattenToGrey(rgba, width * height), width, height };
}

// ink_of()

/** edge_pixels: the four sides' pixels (the corners twice, as torch.cat of the four gives them). */
function edgePixels({ data, width, height }) {
  const edge = new Float32Array(2 * (width + height));
  for (let x = 0; x < width; x++) {
    edge[x] = data[x];
    edge[width + x] = data[(height - 1) * width + x];
  }
  for (let y = 0; y < height; y++) {
    edge[2 * width + y] = data[y * width];
    edge[2 * width + height + y] = data[y * width + width - 1];
  }
  return edge;
}

function abovePaper(edge) {
  const m = median(edge);
  return f32(m + f32(5 * median(edge.map((v) => Math.abs(f32(v - m))))));
}

/** A 3x3 mean with replicated borders (avg_pool2d of a replicate-padded picture): sums of three along each row,
 * then of three of those down each column. */
function mean3x3({ data, width, height }) {
  const across = new Float64Array(width * height);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      across[row + x] = data[row + Math.max(0, x - 1)] + data[row + x] + data[row + Math.min(width - 1, x + 1)];
    }
  }
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const [up, row, down] = [Math.max(0, y - 1) * width, y * width, Math.min(height - 1, y + 1) * width];
    for (let x = 0; x < width; x++) out[row + x] = (across[up + x] + across[row + x] + across[down + x]) / 9;
  }
  return out;
}

function noiseLevel(pixels) {
  const smooth = mean3x3(pixels);
  const deviation = new Float32Array(smooth.length);
  for (let i = 0; i < smooth.length; i++) deviation[i] = Math.abs(pixels.data[i] - smooth[i]);
  return 1.4826 * median(deviation, false);
}

/** paper_level: the paper's brightness under each pixel, from the medians of 16 blocks a side. */
function paperLevel({ data, width, height }) {
  const block = Math.max(1, Math.ceil(Math.max(height, width) / 16));
  const rows = Math.ceil(height / block);
  const columns = Math.ceil(width / block);
  const medians = new Float32Array(rows * columns);
  const values = new Float32Array(block * block);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c++) {
      let n = 0;
      for (let y = r * block; y < (r + 1) * block; y++) {
        const row = Math.min(y, height - 1) * width;
        for (let x = c * block; x < (c + 1) * block; x++) values[n++] = data[row + Math.min(x, width - 1)];
      }
      medians[r * columns + c] = median(values, false);
    }
  }
  const darkest = new Float32Array(rows * columns);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c++) {
      let low = Infinity;
      for (let y = Math.max(0, r - 1); y <= Math.min(rows - 1, r + 1); y++) {
        for (let x = Math.max(0, c - 1); x <= Math.min(columns - 1, c + 1); x++) {
          low = Math.min(low, medians[y * columns + x]);
        }
      }
      darkest[r * columns + c] = low;
    }
  }
  const smooth = mean3x3({ data: darkest, width: columns, height: rows });
  // F.interpolate(mode="bilinear", align_corners=False): the source position of each output pixel
  const sources = (inSize, outSize) => {
    const [low, high, share] = [new Int32Array(outSize), new Int32Array(outSize), new Float32Array(outSize)];
    for (let i = 0; i < outSize; i++) {
      const s = Math.max(0, f32(f32(inSize / outSize) * f32(i + 0.5)) - 0.5);
      low[i] = Math.min(Math.floor(s), inSize - 1);
      high[i] = Math.min(low[i] + 1, inSize - 1);
      share[i] = s - low[i];
    }
    return [low, high, share];
  };
  const [x0, x1, lx] = sources(columns, width);
  const [y0, y1, ly] = sources(rows, height);
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const [top, bottom, down] = [y0[y] * columns, y1[y] * columns, ly[y]];
    for (let x = 0; x < width; x++) {
      const upper = smooth[top + x0[x]] * (1 - lx[x]) + smooth[top + x1[x]] * lx[x];
      const lower = smooth[bottom + x0[x]] * (1 - lx[x]) + smooth[bottom + x1[x]] * lx[x];
      out[y * width + x] = upper * (1 - down) + lower * down;
    }
  }
  return out;
}

/** remove_ruled_lines along one axis, in place: `count` lines of `length` pixels, pixel j of line i at
 * data[i * lineStep + j * step] (rows: lineStep = width, step = 1; columns the other way round). */
function removeLines(data, count, length, lineStep, step) {
  const original = Float32Array.from(data);
  const line = new Float32Array(length);
  const k = Math.max(1, Math.trunc((1 - RULED_COVER) * length));
  const ruled = new Uint8Array(count + 1); // one more, never ruled, ends the last run
  for (let i = 0; i < count; i++) {
    for (let j = 0; j < length; j++) line[j] = data[i * lineStep + j * step];
    const level = kthSmallest(line, k - 1, false);
    if (!(level > f32(INK_FLOOR))) continue;
    ruled[i] = 1;
    for (let j = 0; j < length; j++) {
      const at = i * lineStep + j * step;
      data[at] = Math.max(0, f32(data[at] - level));
    }
  }
  let start = -1;
  for (let i = 0; i <= count; i++) {
    if (ruled[i] && start < 0) start = i;
    if (ruled[i] || start < 0) continue;
    const thick = i - start > Math.max(1, RULED_THICKNESS * count); // too thick for a printed line: kept
    for (let r = start; r < i; r++) {
      for (let j = 0; j < length; j++) {
        const at = r * lineStep + j * step;
        if (thick) data[at] = original[at];
        else if (start > 0 && i < count) {
          // a stroke that goes on both above and below the line went through it
          const mend = Math.min(data[(start - 1) * lineStep + j * step], data[i * lineStep + j * step]);
          data[at] = Math.max(data[at], mend);
        }
      }
    }
    start = -1;
  }
}

/** remove_ruled_lines: rows first, then columns. */
function removeRuledLines({ data, width, height }) {
  const out = Float32Array.from(data);
  removeLines(out, height, width, width, 1);
  removeLines(out, width, height, 1, width);
  return { data: out, width, height };
}

/** scipy.ndimage.label with 8-connectivity and find_objects: labels (0 = background) and each piece's box. */
function pieces(mask, width, height) {
  const labels = new Int32Array(width * height);
  const boxes = [];
  const stack = [];
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || labels[start]) continue;
    const label = boxes.length + 1;
    const box = { top: height, bottom: 0, left: width, right: 0 };
    labels[start] = label;
    stack.push(start);
    while (stack.length) {
      const i = stack.pop();
      const x = i % width;
      const y = (i - x) / width;
      box.top = Math.min(box.top, y);
      box.bottom = Math.max(box.bottom, y + 1);
      box.left = Math.min(box.left, x);
      box.right = Math.max(box.right, x + 1);
      for (let ny = Math.max(0, y - 1); ny <= Math.min(height - 1, y + 1); ny++) {
        for (let nx = Math.max(0, x - 1); nx <= Math.min(width - 1, x + 1); nx++) {
          const j = ny * width + nx;
          if (mask[j] && !labels[j]) {
            labels[j] = label;
            stack.push(j);
          }
        }
      }
    }
    boxes.push(box);
  }
  return { labels, boxes };
}

/** side_lines: for a piece of `height` x `width` (a mask, cropped to its box), the span of lines each side's frame
 * line takes, [start, stop) counted from that side (top, bottom, left, right); null when it is not a frame. */
function sideSpans(part, height, width) {
  const rowInk = new Float64Array(height);
  const columnInk = new Float64Array(width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      rowInk[y] += part[y * width + x];
      columnInk[x] += part[y * width + x];
    }
  }
  const rows = Array.from(rowInk, (ink) => ink / width);
  const columns = Array.from(columnInk, (ink) => ink / height);
  const spans = [];
  for (const cover of [rows, rows.slice().reverse(), columns, columns.slice().reverse()]) {
    const count = cover.length;
    const outer = Math.max(1, Math.trunc(0.15 * count));
    const strong = cover.slice(0, outer).flatMap((v, i) => (v >= 0.9 ? [i] : []));
    if (!strong.length) return null;
    let start = strong[0];
    let stop = strong[strong.length - 1] + 1;
    while (start > 0 && cover[start - 1] >= 0.5) start--;
    while (stop < count && cover[stop] >= 0.5) stop++;
    if (stop - start > outer) return null;
    spans.push([start, stop]);
  }
  return spans;
}

function removeFrames({ data, width, height }) {
  const threshold = f32(0.2 * peakOf(data)); // numpy compares float32 with the double rounded to float32
  const mask = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) mask[i] = data[i] > threshold;
  const { labels, boxes } = pieces(mask, width, height);
  const out = Float32Array.from(data);
  boxes.forEach((box, index) => {
    const h = box.bottom - box.top;
    const w = box.right - box.left;
    if (Math.min(h, w) < 3 * MIN_SIDE) return;
    const part = new Uint8Array(h * w);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) part[y * w + x] = labels[(y + box.top) * width + x + box.left] === index + 1;
    }
    const spans = sideSpans(part, h, w);
    if (!spans) return;
    const [[t0, t1], [b0, b1], [l0, l1], [r0, r1]] = spans;
    const clear = (y0, y1, x0, x1) => {
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) if (part[y * w + x]) out[(y + box.top) * width + x + box.left] = 0;
      }
    };
    clear(t0, t1, 0, w);
    clear(h - b1, h - b0, 0, w);
    clear(0, h, l0, l1);
    clear(0, h, w - r1, w - r0);
  });
  return { data: out, width, height };
}

function peakOf(data) {
  let peak = 0;
  for (let i = 0; i < data.length; i++) if (data[i] > peak) peak = data[i];
  return peak;
}

function divided({ data, width, height }, by) {
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i] / by;
  return { data: out, width, height };
}

/** ink_of: 8-bit grey -> the ink, light on black in [0, 1]. Throws NoDigit when there is none. */
export function inkOf(grey) {
  const { width, height } = grey;
  const pixels = divided(grey, 255);
  if (median(edgePixels(pixels)) > 0.5) {
    // dark ink on light paper: make it light ink on black, like MNIST
    for (let i = 0; i < pixels.data.length; i++) pixels.data[i] = 1 - pixels.data[i];
  }
  const ceiling = abovePaper(edgePixels(pixels));
  const paper = paperLevel(pixels);
  const noise = f32(4 * noiseLevel(pixels));
  const ink = new Float32Array(width * height);
  for (let i = 0; i < ink.length; i++) {
    ink[i] = Math.max(0, f32(Math.max(0, f32(pixels.data[i] - Math.min(paper[i], ceiling))) - noise));
  }
  let lines = removeRuledLines({ data: ink, width, height });
  if (peakOf(lines.data) < f32(0.1)) throw new NoDigit("no digit found (the image is blank)");
  lines = removeFrames(divided(lines, peakOf(lines.data)));
  const peak = peakOf(lines.data);
  if (peak < f32(0.1)) throw new NoDigit("no digit found (only lines)");
  return divided(lines, peak);
}

// mnist_digit()

function crop({ data, width, height }) {
  let [top, bottom, left, right] = [height, -1, width, -1];
  const threshold = f32(0.2);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[y * width + x] > threshold) {
        top = Math.min(top, y);
        bottom = Math.max(bottom, y);
        left = Math.min(left, x);
        right = Math.max(right, x);
      }
    }
  }
  const w = right - left + 1;
  const h = bottom - top + 1;
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) out.set(data.subarray((y + top) * width + left, (y + top) * width + left + w), y * w);
  return { data: out, width: w, height: h };
}

/** stroke_width: twice the ink over the length of the half-intensity outline (the border counts as edge). */
function strokeWidth({ data, width, height }) {
  const mask = new Uint8Array((width + 2) * (height + 2)); // a margin of zeros: the border is an edge
  let ink = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      ink += data[y * width + x];
      mask[(y + 1) * (width + 2) + x + 1] = data[y * width + x] > f32(0.5);
    }
  }
  let edge = 0;
  const w = width + 2;
  for (let y = 1; y <= height; y++) {
    for (let x = 1; x <= width; x++) {
      const i = y * w + x;
      if (!mask[i]) continue;
      const inner =
        mask[i - w - 1] & mask[i - w] & mask[i - w + 1] & mask[i - 1] & mask[i + 1] &
        mask[i + w - 1] & mask[i + w] & mask[i + w + 1];
      edge += 1 - inner;
    }
  }
  return edge ? (2 * f32(ink)) / edge : 0;
}

/** The largest of each `kernel` consecutive values of a line of `n` (van Herk and Gil-Werman: running maxima
 * within blocks of `kernel`, from the left and from the right, so that the cost does not grow with the kernel). */
function slidingMax(line, n, kernel, out) {
  const left = new Float32Array(n);
  const right = new Float32Array(n);
  for (let i = 0; i < n; i++) left[i] = i % kernel === 0 ? line[i] : Math.max(left[i - 1], line[i]);
  for (let i = n - 1; i >= 0; i--) right[i] = i === n - 1 || (i + 1) % kernel === 0 ? line[i] : Math.max(right[i + 1], line[i]);
  for (let i = 0; i + kernel <= n; i++) out[i] = Math.max(right[i], left[i + kernel - 1]);
}

/** square_max of a picture padded with zeros by `pad` on every side: each kernel x kernel square's largest
 * value, a row pass then a column pass (`sign` -1: the smallest instead). */
function squareExtreme({ data, width, height }, pad, kernel, sign) {
  const [pw, ph] = [width + 2 * pad, height + 2 * pad];
  const [ow, oh] = [pw - kernel + 1, ph - kernel + 1];
  const line = new Float32Array(Math.max(pw, ph));
  const maxima = new Float32Array(Math.max(pw, ph));
  const rows = new Float32Array(ph * ow);
  for (let y = 0; y < ph; y++) {
    line.fill(0);
    if (y >= pad && y < pad + height) for (let x = 0; x < width; x++) line[x + pad] = sign * data[(y - pad) * width + x];
    slidingMax(line, pw, kernel, maxima);
    rows.set(maxima.subarray(0, ow), y * ow);
  }
  const out = new Float32Array(oh * ow);
  for (let x = 0; x < ow; x++) {
    for (let y = 0; y < ph; y++) line[y] = rows[y * ow + x];
    slidingMax(line, ph, kernel, maxima);
    for (let y = 0; y < oh; y++) out[y * ow + x] = sign * maxima[y];
  }
  return { data: out, width: ow, height: oh };
}

/** match_stroke_width: a hairline thickened, a blob thinned, to MNIST's median stroke once scaled. */
function matchStrokeWidth(ink, scale) {
  const width = strokeWidth(ink) * scale;
  const [low, mid, high] = STROKE_WIDTHS;
  const radius = low <= width && width <= high ? 0 : pyRound((mid - width) / scale / 2);
  if (radius === 0) return ink;
  const pad = Math.abs(radius);
  if (radius > 0) return squareExtreme(ink, 2 * pad, 2 * pad + 1, 1);
  const thinner = squareExtreme(ink, pad, 2 * pad + 1, -1);
  return peakOf(thinner.data) > f32(0.5) ? thinner : ink;
}

/** mnist_digit: the ink of one digit -> the model's input, a normalized 28x28 Float32Array. */
export function mnistDigit(ink) {
  let digit = crop(divided(ink, peakOf(ink.data)));
  digit = crop(matchStrokeWidth(digit, 20 / Math.max(digit.width, digit.height)));
  const scale = 20 / Math.max(digit.width, digit.height);
  const width = Math.max(1, pyRound(digit.width * scale));
  const height = Math.max(1, pyRound(digit.height * scale));
  const bytes = new Uint8ClampedArray(digit.data.length); // (ink * 255).byte(): truncated
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.trunc(f32(digit.data[i] * 255));
  const small = Float32Array.from(resize8(bytes, digit.width, digit.height, 1, width, height, "lanczos"), (v) =>
    f32(v / 255),
  );
  let total = 0;
  let sumY = 0;
  let sumX = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = small[y * width + x];
      total += v;
      sumY += v * y;
      sumX += v * x;
    }
  }
  const [centreY, centreX] = total > 0 ? [sumY / total, sumX / total] : [(height - 1) / 2, (width - 1) / 2];
  const top = Math.min(Math.max(pyRound(13.5 - centreY), 0), 28 - height);
  const left = Math.min(Math.max(pyRound(13.5 - centreX), 0), 28 - width);
  const input = new Float32Array(28 * 28).fill(normalized(0));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) input[(y + top) * 28 + x + left] = normalized(small[y * width + x]);
  }
  return input;
}

/** A pixel in [0, 1] in MNIST's normalization, as torch computes it in float32 (data.normalize). */
export function normalized(value) {
  return f32(f32(value - f32(MEAN)) / f32(STD));
}

/** to_mnist: RGBA pixels of a picture of one digit -> the model's input. Throws NoDigit. */
export function toMnist(rgba, width, height) {
  return mnistDigit(inkOf(greyscale(rgba, width, height)));
}
