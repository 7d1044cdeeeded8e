// Runs the original MoveNet TFJS graphs with TensorFlow.js (pure-JS CPU backend) on the crops that
// `python benchmarks/movenet_reference_check.py prepare --dir DIR` wrote, for the comparison with our port.
//
//   mkdir -p /tmp/tfjs-ref && (cd /tmp/tfjs-ref && npm init -y && npm install @tensorflow/tfjs@4)
//   NODE_PATH=/tmp/tfjs-ref/node_modules node benchmarks/movenet_reference_check.mjs DIR [REPEATS=3]
//
// TensorFlow.js is not a lowres-hps dependency: it lives in a scratch folder found through NODE_PATH
// (hence createRequire: ES `import` ignores NODE_PATH). The plain JS package has no file:// loader in
// Node, so model.json and its shards are read with fs and handed over with tf.io.fromMemory; the graph
// dequantises its float16 weights itself. Per variant it writes tfjs_<variant>_keypoints.bin (the graph's
// output: (N, 17, 3) SinglePose, (N, 6, 56) MultiPose),
// tfjs_<variant>_<head>.bin (N, h, w, C) raw float32, and tfjs_<variant>.json (files, per-run seconds).
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(import.meta.url);
let tf;
try {
  tf = require("@tensorflow/tfjs");
} catch (error) {
  console.error("@tensorflow/tfjs not found: npm install @tensorflow/tfjs@4 in a scratch folder and set NODE_PATH to its node_modules");
  process.exit(1);
}

const [folder, repeatsArg] = process.argv.slice(2);
if (!folder) {
  console.error("usage: node movenet_reference_check.mjs DIR [REPEATS]");
  process.exit(2);
}
const repeats = Number(repeatsArg ?? 3);
const manifest = JSON.parse(fs.readFileSync(path.join(folder, "manifest.json"), "utf8"));

async function loadGraph(modelJson) {
  const spec = JSON.parse(fs.readFileSync(modelJson, "utf8"));
  const weightSpecs = [];
  const shards = [];
  for (const group of spec.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const shard of group.paths) shards.push(fs.readFileSync(path.join(path.dirname(modelJson), shard)));
  }
  const all = Buffer.concat(shards);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const artifacts = { modelTopology: spec.modelTopology, weightSpecs, weightData, format: spec.format,
                      generatedBy: spec.generatedBy, convertedBy: spec.convertedBy, signature: spec.signature };
  return tf.loadGraphModel(tf.io.fromMemory(artifacts));
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

await tf.setBackend("cpu");
await tf.ready();
for (const [variant, spec] of Object.entries(manifest.variants)) {
  const heads = Object.entries(spec.head_nodes ?? manifest.head_nodes);  // MultiPose names its heads apart
  const model = await loadGraph(spec.model_json);
  const [n, h, w, c] = spec.shape;
  const buffer = fs.readFileSync(path.join(folder, spec.inputs));
  const inputs = new Int32Array(buffer.buffer, buffer.byteOffset, n * h * w * c);
  const keypoints = [];
  const headValues = Object.fromEntries(heads.map(([name]) => [name, []]));
  const seconds = [];
  for (let i = 0; i < n; i++) {
    const input = tf.tensor4d(inputs.subarray(i * h * w * c, (i + 1) * h * w * c), [1, h, w, c], "int32");
    for (let r = 0; r <= repeats; r++) {  // the first run warms up
      const start = process.hrtime.bigint();
      const out = model.execute(input, "Identity");
      out.dataSync();
      if (r > 0) seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
      out.dispose();
    }
    const outputs = model.execute(input, ["Identity", ...heads.map(([, node]) => node)]);
    keypoints.push(outputs[0].dataSync().slice());
    heads.forEach(([name], j) => headValues[name].push(outputs[j + 1].dataSync().slice()));
    tf.dispose([input, ...outputs]);
  }
  const write = (file, arrays) => {
    const total = arrays.reduce((sum, a) => sum + a.length, 0);
    const joined = new Float32Array(total);
    let offset = 0;
    for (const a of arrays) { joined.set(a, offset); offset += a.length; }
    fs.writeFileSync(path.join(folder, file), Buffer.from(joined.buffer));
    return file;
  };
  const record = {
    keypoints: write(`tfjs_${variant}_keypoints.bin`, keypoints),
    heads: Object.fromEntries(heads.map(([name]) => [name, write(`tfjs_${variant}_${name}.bin`, headValues[name])])),
    seconds,
    runtime: `@tensorflow/tfjs ${tf.version.tfjs} (${tf.getBackend()} backend), node ${process.version}`,
  };
  fs.writeFileSync(path.join(folder, `tfjs_${variant}.json`), JSON.stringify(record, null, 1));
  console.log(`${variant}: ${n} crops, median ${(median(seconds) * 1e3).toFixed(0)} ms per crop (${record.runtime})`);
  model.dispose();
}
