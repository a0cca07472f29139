// npm run build [-- OUT]: the page, onnxruntime-web's smallest build that runs the model (the WebAssembly-only
// bundle and its single wasm file) and the committed int8 model, copied into one folder (default: dist/).
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "dist"));
const ort = join(here, "node_modules", "onnxruntime-web", "dist");
const files = [
  ...["index.html", "favicon.svg", "style.css", "app.js", "preprocess.js"].map((name) => join(here, name)),
  ...["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"].map((name) => join(ort, name)),
  join(here, "..", "models", "mnist_model.int8.onnx"),
];
mkdirSync(out, { recursive: true });
for (const file of files) copyFileSync(file, join(out, file.split(/[\\/]/).pop()));
console.log(`${files.length} files in ${out}`);
