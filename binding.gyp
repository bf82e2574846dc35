# CPU-only build of the braintrace addon (node-gyp; what `npm install` compiles
# when no prebuild fits). The CUDA build is CMakeLists.txt (cmake-js), which
# compiles the same sources plus native/cuda/*.cu into build-cuda/.
#
# -ffp-contract=off: no a * b + c is fused into one multiply-add behind the code's back.
# The run-time ISA clones (AVX2, AVX-512) and the baseline code then round every operation
# the same way, so results do not depend on the CPU (docs/architecture.md, "Exactness across
# CPUs").
#
# Sources are listed by globbing the source folders, so a new .cc file in
# native/{binding,core,cpu} needs no edit here (CMakeLists.txt globs the same folders).
{
  "targets": [
    {
      "target_name": "braintrace",
      "sources": [
        "<!@(node -p \"['native/binding','native/core','native/cpu'].filter(d=>require('fs').existsSync(d)).flatMap(d=>require('fs').readdirSync(d).filter(f=>f.endsWith('.cc')).sort().map(f=>d+'/'+f)).concat(['native/cuda/cuda_stub.cc']).join(' ')\")"
      ],
      "include_dirs": ["native/include", "native"],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED"
      ],
      "cflags_cc!": ["-std=gnu++17", "-std=gnu++1y", "-O2", "-O0"],
      "cflags_cc": ["-std=c++17", "-O3", "-ffp-contract=off", "-fvisibility=hidden", "-fvisibility-inlines-hidden"],
      "cflags!": ["-O2", "-O0"],
      "cflags": ["-O3"],
      "ldflags": ["-pthread"],
      "xcode_settings": {
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "GCC_SYMBOLS_PRIVATE_EXTERN": "YES",
        "GCC_OPTIMIZATION_LEVEL": "3",
        "OTHER_CPLUSPLUSFLAGS": ["-ffp-contract=off"],
        "MACOSX_DEPLOYMENT_TARGET": "11.0"
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "AdditionalOptions": ["/std:c++17", "/O2"] }
      }
    }
  ]
}
