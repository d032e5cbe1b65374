const ort = require("onnxruntime-node");
const fs = require("fs");

function gaussian() {  // Box-Muller
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
}

(async () => {
  const dir = process.argv[2];
  const manifest = JSON.parse(fs.readFileSync(dir + "/gentoolkit.json"));
  const session = await ort.InferenceSession.create(dir + "/model.onnx");
  const zDim = manifest.runtime.z_dim;
  const z = Float32Array.from({ length: 4 * zDim }, gaussian);
  const { samples } = await session.run({ z: new ort.Tensor("float32", z, [4, zDim]) });
  console.log(samples.dims, Array.from(samples.data.slice(0, 8)));
})();
