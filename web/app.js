// The page: a canvas to draw on, a file to choose or drop, and the model's three likeliest digits.
// Reading a picture is preprocess.js (predict.py's steps) and then the int8 ONNX model on onnxruntime-web's
// WebAssembly backend, single-threaded (a static host sends no cross-origin isolation headers).

import * as ort from "./ort.wasm.min.mjs";
import { MEAN, NoDigit, STD, normalized, shapeProblem, toMnist } from "./preprocess.js";

const MODEL = "mnist_model.int8.onnx";
const BRUSH = 30; // the Gradio demo's brush on its 420 px canvas
const LARGEST_DECODE = 4096; // a bigger picture is shrunk to this many pixels a side as the browser decodes it

const canvas = document.getElementById("canvas");
const pen = canvas.getContext("2d", { willReadFrequently: true });
const status = document.getElementById("status");
const prediction = document.getElementById("prediction");
const shown = document.getElementById("input").getContext("2d");
const timing = document.getElementById("timing");

ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = new URL("./", import.meta.url).href;

/** The model, loaded once: an onnxruntime-web session. */
const session = (async () => {
  const bytes = new Uint8Array(await (await fetch(MODEL)).arrayBuffer());
  document.getElementById("model-size").textContent = `${(bytes.length / 1024).toFixed(1)} KiB`;
  return ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
})();

/** The model's probabilities for one normalized 28x28 input. */
async function classify(input) {
  const model = await session;
  const outputs = await model.run({ [model.inputNames[0]]: new ort.Tensor("float32", input, [1, 1, 28, 28]) });
  return Array.from(outputs[model.outputNames[0]].data, Math.exp);
}

/** A picture's RGBA pixels -> what the page shows: the top three digits, the input, the times; or the reason
 * there is no digit. */
async function read(rgba, width, height) {
  const start = performance.now();
  let input;
  try {
    input = toMnist(rgba, width, height);
  } catch (error) {
    if (error instanceof NoDigit) return { error: `${error.message[0].toUpperCase()}${error.message.slice(1)}.` };
    throw error;
  }
  const preprocessed = performance.now();
  const probabilities = await classify(input);
  const done = performance.now();
  const top = probabilities
    .map((p, digit) => ({ digit, p }))
    .sort((a, b) => b.p - a.p)
    .slice(0, 3);
  return { top, input, preprocessMs: preprocessed - start, inferenceMs: done - preprocessed, at: done };
}

/** An image file (Blob) -> its RGBA pixels as a viewer shows it (EXIF orientation applied by the browser). */
async function decode(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image", colorSpaceConversion: "none" });
  } catch {
    throw new NoDigit("That file could not be used: not a readable image.");
  }
  const problem = shapeProblem(bitmap.width, bitmap.height);
  if (problem) throw new NoDigit(`That file could not be used: ${problem}.`);
  const shrink = LARGEST_DECODE / Math.max(bitmap.width, bitmap.height);
  if (shrink < 1) {
    const [width, height] = [Math.round(bitmap.width * shrink), Math.round(bitmap.height * shrink)];
    bitmap.close();
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image", colorSpaceConversion: "none",
      resizeWidth: width, resizeHeight: height, resizeQuality: "high" });
  }
  const surface = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = surface.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  return context.getImageData(0, 0, surface.width, surface.height);
}

/** Read a file as the page does, for the page and for tests: the result of read(), or {error}. */
async function readFile(file) {
  try {
    const start = performance.now();
    const pixels = await decode(file);
    const decodeMs = performance.now() - start;
    return { ...(await read(pixels.data, pixels.width, pixels.height)), decodeMs };
  } catch (error) {
    if (error instanceof NoDigit) return { error: error.message };
    throw error;
  }
}

function show(result) {
  window.digitPage.shown += 1;
  prediction.replaceChildren();
  shown.fillStyle = "black";
  shown.fillRect(0, 0, 28, 28);
  if (result.error) {
    status.textContent = result.error;
    timing.textContent = "";
    return;
  }
  status.textContent = `Reads ${result.top[0].digit}`;
  for (const { digit, p } of result.top) {
    const item = document.createElement("li");
    const [label, bar, value] = ["span", "span", "span"].map((tag) => document.createElement(tag));
    label.className = "digit";
    label.textContent = digit;
    bar.className = "bar";
    bar.style.width = `${Math.max(1, p * 8)}rem`;
    value.textContent = `${(100 * p).toFixed(1)}%`;
    item.append(label, bar, value);
    prediction.append(item);
  }
  const image = shown.createImageData(28, 28);
  result.input.forEach((v, i) => {
    const level = Math.round(255 * Math.min(1, Math.max(0, v * STD + MEAN)));
    image.data.set([level, level, level, 255], 4 * i);
  });
  shown.putImageData(image, 0, 0);
  timing.textContent = `Preprocessing ${result.preprocessMs.toFixed(1)} ms, model ${result.inferenceMs.toFixed(1)} ms`;
  window.digitPage.readings.push(result);
}

// Drawing: pointer events, so a mouse, a finger and a pen all draw.

function clear() {
  pen.fillStyle = "white";
  pen.fillRect(0, 0, canvas.width, canvas.height);
  drawn = false;
}

let last = null;
let drawn = false;

function point(event) {
  const box = canvas.getBoundingClientRect();
  return [((event.clientX - box.left) * canvas.width) / box.width, ((event.clientY - box.top) * canvas.height) / box.height];
}

function line(from, to) {
  pen.beginPath();
  pen.moveTo(...from);
  pen.lineTo(...to);
  pen.stroke();
}

canvas.addEventListener("pointerdown", (event) => {
  canvas.setPointerCapture(event.pointerId);
  last = point(event);
  line(last, last);
  drawn = true;
});
canvas.addEventListener("pointermove", (event) => {
  if (!last) return;
  for (const each of event.getCoalescedEvents?.() ?? [event]) {
    const next = point(each);
    line(last, next);
    last = next;
  }
});
async function strokeEnded() {
  if (!last) return;
  last = null;
  show(await read(pen.getImageData(0, 0, canvas.width, canvas.height).data, canvas.width, canvas.height));
}
canvas.addEventListener("pointerup", strokeEnded);
canvas.addEventListener("pointercancel", strokeEnded);

document.getElementById("clear").addEventListener("click", () => {
  clear();
  show({ error: "Draw a digit: it is read as soon as you lift the pen." });
});

async function readChosen(file) {
  if (!file) return;
  status.textContent = `Reading ${file.name}…`;
  show(await readFile(file));
}

document.getElementById("file").addEventListener("change", (event) => readChosen(event.target.files[0]));
document.addEventListener("dragover", (event) => {
  event.preventDefault();
  document.body.classList.add("dragging");
});
document.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
document.addEventListener("drop", (event) => {
  event.preventDefault();
  document.body.classList.remove("dragging");
  readChosen(event.dataTransfer.files[0]);
});

pen.lineWidth = BRUSH;
pen.lineCap = "round";
pen.lineJoin = "round";
pen.strokeStyle = "black";
clear();

/** A 28x28 MNIST image (784 bytes, white digit on black) -> the model's probabilities, with no preprocessing
 * but MNIST's normalization: the page's inference path alone. */
function classifyMnist(bytes) {
  return classify(Float32Array.from(bytes, (v) => normalized(Math.fround(v / 255))));
}

// What tests and benchmarks drive: the page's own path from a file, or from pixels, to its answer.
window.digitPage = { readFile, read, classify, classifyMnist, readings: [], shown: 0, ready: null };
window.digitPage.ready = session.then(
  () => {
    status.textContent = "Draw a digit: it is read as soon as you lift the pen.";
    performance.mark("model-ready");
    return true;
  },
  (error) => {
    status.textContent = `The model could not be loaded: ${error.message}`;
    return false;
  },
);
