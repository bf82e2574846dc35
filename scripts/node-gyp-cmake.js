#!/usr/bin/env node
// prebuildify -> cmake-js shim, used by `npm run prebuildify:cuda`:
//   prebuildify --napi --strip --out cuda --node-gyp ./scripts/node-gyp-cmake.js
//
// prebuildify 6 has no cmake-js backend. It spawns `<node-gyp> rebuild --target=<ver>
// --devdir=<dir> --arch=<arch> --release|--debug` and then takes the first *.node in
// build/Release (which is where cmake-js writes by default). This script accepts that
// command line and runs `cmake-js rebuild` instead.
//   * --target is NOT forwarded: in cmake-js it names a CMake build target.
//   * --arch and --debug are forwarded.
//   * Extra CMake arguments come from BRAINTRACE_CMAKE_ARGS (whitespace separated),
//     e.g. BRAINTRACE_CMAKE_ARGS="--CDBRAINTRACE_WITH_CUDA=OFF".
// Note: `cmake-js rebuild` removes build/ (including a node-gyp CPU build); run the two
// prebuildify steps one after the other, never in parallel.
'use strict';
const { spawnSync } = require('child_process');

const args = process.argv.slice(2);
const archArg = args.find((a) => a.startsWith('--arch='));
const arch = archArg ? archArg.slice('--arch='.length) : '';
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const cmd = [cmakeJs, 'rebuild'];
if (arch) cmd.push('--arch', arch);
if (args.includes('--debug')) cmd.push('--debug');
if (process.env.BRAINTRACE_CMAKE_ARGS) {
  cmd.push(...process.env.BRAINTRACE_CMAKE_ARGS.split(/\s+/).filter(Boolean));
}
const r = spawnSync(process.execPath, cmd, { stdio: 'inherit' });
if (r.error) {
  console.error(`node-gyp-cmake: could not run cmake-js: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status === null ? 1 : r.status);
