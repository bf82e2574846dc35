// A child process spoken to one line at a time: write a request line to its stdin, read
// its next stdout line as the answer (requests are sent one after another, never overlapped).
// Used by the comparison benchmark (scripts/bench-compare.js) for its worker processes.
'use strict';
const { spawn } = require('child_process');

/** A line-protocol child: `await child.request(line)` → the next line it prints. */
class LineChild {
  /**
   * @param {string} name   label used in error messages
   * @param {string} cmd    executable
   * @param {string[]} args its arguments
   * @param {object} env    environment of the child (merged over process.env)
   */
  constructor(name, cmd, args, env = {}) {
    this.name = name;
    this.child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.buffer = '';
    this.lines = [];
    this.waiters = [];
    this.stderr = '';
    this.exited = null;
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (d) => {
      this.buffer += d;
      let i;
      while ((i = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, i);
        this.buffer = this.buffer.slice(i + 1);
        const w = this.waiters.shift();
        if (w) w.resolve(line);
        else this.lines.push(line);
      }
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    const fail = (why) => {
      this.exited = why;
      for (const w of this.waiters.splice(0)) w.reject(new Error(`${this.name}: ${why}; stderr: ${this.stderr.trim()}`));
    };
    this.child.on('error', (e) => fail(`could not start (${e.message})`));
    this.child.on('exit', (code, signal) => fail(`exited (code ${code}, signal ${signal})`));
  }

  /** The next stdout line (one already printed, or the next one). */
  nextLine() {
    if (this.lines.length > 0) return Promise.resolve(this.lines.shift());
    if (this.exited) return Promise.reject(new Error(`${this.name}: ${this.exited}; stderr: ${this.stderr.trim()}`));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Writes `line` (a newline is added) and resolves with the answer line. */
  request(line) {
    if (this.exited) return Promise.reject(new Error(`${this.name}: ${this.exited}; stderr: ${this.stderr.trim()}`));
    const p = this.nextLine();
    this.child.stdin.write(line + '\n');
    return p;
  }

  /** Closes its stdin (the workers exit at end of input) and waits for the exit. */
  close() {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.stdin.end();
    });
  }
}

/** A LineChild speaking JSON: `await child.call({ op, ... })` → the `result` of the answer. */
class JsonChild extends LineChild {
  constructor(name, cmd, args, env) {
    super(name, cmd, args, env);
    this.nextId = 1;
  }
  async call(req) {
    const id = this.nextId++;
    const line = await this.request(JSON.stringify({ id, ...req }));
    let res;
    try {
      res = JSON.parse(line);
    } catch {
      throw new Error(`${this.name}: answer is not JSON: ${line.slice(0, 200)}`);
    }
    if (res.id !== id) throw new Error(`${this.name}: answer to request ${res.id}, expected ${id}`);
    if (!res.ok) throw new Error(`${this.name} ${req.op}: ${res.error}`);
    return res.result;
  }
}

module.exports = { LineChild, JsonChild };
