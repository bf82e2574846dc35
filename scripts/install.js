#!/usr/bin/env node
// The package's npm install hook: node-gyp-build (a prebuild from prebuilds/ when one
// fits this platform, otherwise `node-gyp rebuild`), with node-gyp's parallel build on
// every core (JOBS=max) unless the user chose a job count (npm config `jobs`, i.e.
// npm_config_jobs, or JOBS). The build flags themselves are binding.gyp's (-O3, no ISA
// flag: the GEMM picks AVX2 / AVX-512 kernels at run time).
'use strict';
if (!process.env.npm_config_jobs && !process.env.JOBS) process.env.JOBS = 'max';
require('node-gyp-build/bin.js');
