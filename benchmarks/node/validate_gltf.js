// Prints the Khronos glTF validator's JSON report of one .glb / .gltf file.
// Usage: node benchmarks/node/validate_gltf.js file.glb
const fs = require('fs');
const validator = require('gltf-validator');

const path = process.argv[2];
validator.validateBytes(new Uint8Array(fs.readFileSync(path)), {uri: path, maxIssues: 200})
  .then((report) => console.log(JSON.stringify(report, null, 1)))
  .catch((error) => { console.error('validation failed:', error); process.exit(1); });
