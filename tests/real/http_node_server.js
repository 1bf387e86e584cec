// A Node.js HTTP server whose handler answers after 50 ms (tests/real/test_http_real.py).
// node http_node_server.js PORTFILE: listens on 127.0.0.1 (a free port, written to PORTFILE).
"use strict";
const fs = require("fs");
const http = require("http");

const server = http.createServer((req, res) => {
  setTimeout(() => {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("slow hello\n");
  }, 50);
});
server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => {
  const file = process.argv[2];
  fs.writeFileSync(file + ".tmp", String(server.address().port));
  fs.renameSync(file + ".tmp", file);
});
