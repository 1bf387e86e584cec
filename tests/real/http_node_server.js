// A Node.js HTTP server whose handler answers after DELAY ms (50 by default: tests/real/test_http_real.py;
// 0: bench/http_bench.py). node http_node_server.js PORTFILE [DELAY]: listens on 127.0.0.1 (a free port,
// written to PORTFILE).
"use strict";
const fs = require("fs");
const http = require("http");

const delay = Number(process.argv[3] || 50);

function answer(res) {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end("slow hello\n");
}

const server = http.createServer((req, res) => {
  if (delay > 0) setTimeout(() => answer(res), delay);
  else answer(res);
});
server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => {
  const file = process.argv[2];
  fs.writeFileSync(file + ".tmp", String(server.address().port));
  fs.renameSync(file + ".tmp", file);
});
