/**
 * `npm start`: the whole pipeline on this machine, until Ctrl-C or SIGTERM (local/run.ts).
 *
 * Every handler runs in this one process, and libuv's thread pool serves both sharp's image work
 * (one long task per variant being made) and the emulators' file and LevelDB work (many short ones).
 * With the default 4 threads, two images in processing fill the pool and every write of the local
 * servers waits for an encode to finish. The pool is sized before anything uses it: this module
 * imports nothing before setting it.
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
await import('./run.ts');
