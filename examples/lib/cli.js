// Command-line options shared by the examples: --quick (fewer iterations, a weaker but
// still checked target, for the tests), --plot <file.svg>, --seed <n>, --iters <n>.
'use strict';

/**
 * Parses the command line. `accept.online`: the script also takes `--online`
 * (only evidence-ei.js does; elsewhere it is an unknown option, not silently ignored).
 */
function parseArgs(argv = process.argv.slice(2), accept = {}) {
  const o = { quick: false, plot: null, seed: null, iters: null, online: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (a.includes('=')) return a.slice(a.indexOf('=') + 1);
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    const key = a.split('=')[0];
    if (key === '--quick') o.quick = true;
    else if (key === '--plot') o.plot = val();
    else if (key === '--seed') o.seed = int(val(), '--seed');
    else if (key === '--iters') o.iters = int(val(), '--iters');
    else if (key === '--online' && accept.online) o.online = true; // evidence-ei.js: train with D_RTRL
    else if (key === '--help' || key === '-h') usage(null);
    else usage(`unknown option ${a}`);
  }
  return o;
}

function int(s, what) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) usage(`${what} must be a non-negative integer; got ${s}`);
  return n;
}

function usage(err) {
  const msg = 'options: --quick  --plot <out.svg>  --seed <n>  --iters <n>  (evidence-ei.js also: --online)';
  if (err) {
    console.error(`${err}\n${msg}`);
    process.exit(2);
  }
  console.log(msg);
  process.exit(0);
}

/**
 * The last line of every example: `target reached: <message>` on stdout, or
 * `target missed: <message>` on stderr and exit code 1.
 */
function checkTarget(ok, message) {
  if (!ok) {
    console.error(`target missed: ${message}`);
    process.exit(1);
  }
  console.log(`target reached: ${message}`);
}

module.exports = { parseArgs, checkTarget };
