#!/usr/bin/env node
// `photo-intake`: the command-line client is TypeScript, run by a Node that strips types (22.18 and
// later). An older `node` first on PATH hands over to the project's own Node 24 (the `node`
// devDependency), with the same arguments and terminal.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('./main.ts', import.meta.url));

if (process.features.typescript) {
  const cli = await import(main);
  process.exitCode = await cli.main(process.argv.slice(2));
} else {
  let node;
  try {
    node = createRequire(import.meta.url).resolve('node/bin/node');
  } catch {
    process.stderr.write('photo-intake needs Node.js 22.18 or later (or `npm ci` in the project).\n');
    process.exit(1);
  }
  const child = spawn(node, [main, ...process.argv.slice(2)], { stdio: 'inherit' });
  // Ctrl-C reaches the child from the terminal itself; other signals are passed on.
  process.on('SIGINT', () => {});
  for (const signal of ['SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGINT' ? 130 : 1)));
}
