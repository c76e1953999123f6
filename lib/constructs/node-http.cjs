// Bundled in place of `node:http` (see BUNDLE_ALIASES in pipeline-function.ts). An ES module import of
// `node:http` makes Node build its ES module facade, which reads every export, and one of them loads
// undici (Node's fetch) eagerly: 20-30 ms of every cold start. The module object itself is the same.
module.exports = process.getBuiltinModule('node:http');
