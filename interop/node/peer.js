#!/usr/bin/env node
// Node.js `ws` interop peer for crates/ws-interop.
//
// Usage:
//   node peer.js server <port-or-0>
//     Echo server on 127.0.0.1. Prints `PORT <n>` once listening, then serves
//     until killed. Text is echoed as text, binary as binary. Subprotocol
//     `chat` is selected when offered (and none otherwise). Commands (text):
//       close-me    close with 4001 "bye"
//       ping-me     ping with "from-server", reply "pong-received" once the pong is in
//       last-close  reply "<code> <reason>" of the last connection that closed
//                   ("none" before any)
//
//   node peer.js client <ws-url>
//     Runs the fixed scenario against one of our servers (which must speak the
//     same commands) and exits 0 printing `OK` only if every check passes:
//       connection 1: `chat` negotiated; text and binary echo at
//         0, 125, 126, 65535, 65536 and 1048576 bytes, a UTF-8 text, and a
//         fragmented text and binary message (sent in several frames);
//         a ping answered by its pong; `ping-me` answered by "pong-received";
//         then we close with 1000 "done" and expect the server's echo with code 1000.
//       connection 2: no subprotocol offered (none may be chosen); we send
//         `close-me` and expect the server's Close 4001 "bye".
//
// Messages up to 16 MiB are accepted on both sides. Compression is off unless
// PEER_DEFLATE is set, to `default` (ws' own settings), `no-takeover` (both
// directions reset their context after each message) or `bits-S-C` (server
// and client max window bits S and C): then permessage-deflate is offered
// (client) or accepted (server), every message is compressed (threshold 0),
// and a connection that did not negotiate it fails (client: the scenario;
// server: closed with 4002).
'use strict';

const crypto = require('crypto');
const { WebSocket, WebSocketServer } = require('ws');

const MAX_PAYLOAD = 16 * 1024 * 1024;
const SIZES = [0, 125, 126, 65535, 65536, 1048576];
const UTF8_TEXT = 'h\u00e9llo w\u00f6rld \u2713 \u{1f389}';
const TIMEOUT_MS = 30000;
const DEFLATE = process.env.PEER_DEFLATE || '';

// The `perMessageDeflate` option for PEER_DEFLATE.
function deflateOptions() {
  if (!DEFLATE) return false;
  const options = { threshold: 0 };
  if (DEFLATE === 'no-takeover') {
    options.serverNoContextTakeover = true;
    options.clientNoContextTakeover = true;
  } else if (DEFLATE.startsWith('bits-')) {
    const [server, client] = DEFLATE.slice(5).split('-').map(Number);
    options.serverMaxWindowBits = server;
    options.clientMaxWindowBits = client;
  }
  return options;
}

function negotiatedDeflate(ws) {
  return ws.extensions.includes('permessage-deflate');
}

function runServer(port) {
  let lastClose = 'none';
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port,
    perMessageDeflate: deflateOptions(),
    maxPayload: MAX_PAYLOAD,
    handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false),
  });
  wss.on('listening', () => {
    process.stdout.write(`PORT ${wss.address().port}\n`);
  });
  wss.on('connection', (ws) => {
    if (DEFLATE && !negotiatedDeflate(ws)) {
      ws.close(4002, 'no deflate');
      return;
    }
    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        const text = data.toString();
        if (text === 'close-me') {
          ws.close(4001, 'bye');
          return;
        }
        if (text === 'ping-me') {
          ws.once('pong', () => ws.send('pong-received'));
          ws.ping('from-server');
          return;
        }
        if (text === 'last-close') {
          ws.send(lastClose);
          return;
        }
      }
      ws.send(data, { binary: isBinary });
    });
    ws.on('close', (code, reason) => {
      lastClose = `${code} ${reason.toString()}`;
    });
    ws.on('error', (err) => console.error(`peer.js server: connection error: ${err.message}`));
  });
}

function textOf(size) {
  const pattern = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return pattern.repeat(Math.ceil(size / pattern.length) + 1).slice(0, size);
}

function check(condition, what) {
  if (!condition) throw new Error(what);
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A connected client with a queue of received messages and a promise for its close.
function open(url, protocols) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, {
        perMessageDeflate: deflateOptions(),
        maxPayload: MAX_PAYLOAD,
        handshakeTimeout: TIMEOUT_MS,
      });
      const queue = [];
      const waiters = [];
      const conn = { ws, closed: null };
      conn.closed = new Promise((resolveClose) => {
        ws.on('close', (code, reason) => {
          resolveClose({ code, reason: reason.toString() });
          for (const w of waiters.splice(0)) w.reject(new Error(`closed (${code} ${reason})`));
        });
      });
      ws.on('message', (data, isBinary) => {
        const msg = { data, isBinary };
        const w = waiters.shift();
        if (w) w.resolve(msg);
        else queue.push(msg);
      });
      conn.next = () => {
        if (queue.length) return Promise.resolve(queue.shift());
        return withTimeout(
          new Promise((res, rej) => waiters.push({ resolve: res, reject: rej })),
          'waiting for a message',
        );
      };
      ws.once('open', () => {
        if (DEFLATE && !negotiatedDeflate(ws)) {
          reject(new Error(`permessage-deflate not negotiated: "${ws.extensions}"`));
        } else {
          resolve(conn);
        }
      });
      ws.once('error', reject);
    }),
    `connecting to ${url}`,
  );
}

async function scenario(url) {
  // Connection 1: echo, pings, client-initiated close.
  let conn = await open(url, ['chat']);
  const { ws } = conn;
  check(ws.protocol === 'chat', `subprotocol ${JSON.stringify(ws.protocol)}, expected "chat"`);
  for (const size of SIZES) {
    const text = textOf(size);
    ws.send(text);
    let echo = await conn.next();
    check(!echo.isBinary, `text echo of ${size} bytes came back as binary`);
    check(echo.data.toString() === text, `text echo of ${size} bytes differs (got ${echo.data.length})`);
    const data = crypto.randomBytes(size);
    ws.send(data);
    echo = await conn.next();
    check(echo.isBinary, `binary echo of ${size} bytes came back as text`);
    check(Buffer.compare(echo.data, data) === 0, `binary echo of ${size} bytes differs (got ${echo.data.length})`);
  }
  ws.send(UTF8_TEXT);
  const utf8 = await conn.next();
  check(!utf8.isBinary && utf8.data.toString() === UTF8_TEXT, `UTF-8 echo differs: ${utf8.data}`);

  // Fragmented messages: one frame per piece, continuation frames after the first.
  ws.send('frag', { fin: false });
  ws.send('men', { fin: false });
  ws.send('ted \u2713', { fin: true });
  const fragText = await conn.next();
  check(!fragText.isBinary && fragText.data.toString() === 'fragmented \u2713', `fragmented text echo: ${fragText.data}`);
  const tail = Buffer.alloc(70000, 2);
  ws.send(Buffer.from([0, 1]), { binary: true, fin: false });
  ws.send(Buffer.alloc(0), { binary: true, fin: false });
  ws.send(tail, { binary: true, fin: true });
  const fragBin = await conn.next();
  check(
    fragBin.isBinary && Buffer.compare(fragBin.data, Buffer.concat([Buffer.from([0, 1]), tail])) === 0,
    `fragmented binary echo differs (${fragBin.data.length} bytes)`,
  );

  const pong = withTimeout(new Promise((resolve) => ws.once('pong', resolve)), 'waiting for pong');
  ws.ping('from-client');
  const pongData = await pong;
  check(pongData.toString() === 'from-client', `pong payload ${JSON.stringify(pongData.toString())}`);

  ws.send('ping-me');
  const reply = await conn.next();
  check(reply.data.toString() === 'pong-received', `ping-me answered ${JSON.stringify(reply.data.toString())}`);

  ws.close(1000, 'done');
  const echoClose = await withTimeout(conn.closed, 'waiting for the close echo');
  // The echo repeats the code; the reason of an echo is the echoing side's choice.
  check(echoClose.code === 1000, `close echo ${echoClose.code} ${JSON.stringify(echoClose.reason)}, expected 1000`);

  // Connection 2: no subprotocol offered, server-initiated close.
  conn = await open(url, []);
  check(conn.ws.protocol === '', `connection 2: subprotocol ${JSON.stringify(conn.ws.protocol)} though none was offered`);
  conn.ws.send('close-me');
  const serverClose = await withTimeout(conn.closed, "waiting for the server's close");
  check(
    serverClose.code === 4001 && serverClose.reason === 'bye',
    `server closed with ${serverClose.code} ${JSON.stringify(serverClose.reason)}, expected 4001 "bye"`,
  );
}

function main(argv) {
  if (argv.length === 2 && argv[0] === 'server') {
    runServer(Number(argv[1]));
    return;
  }
  if (argv.length === 2 && argv[0] === 'client') {
    scenario(argv[1]).then(
      () => {
        process.stdout.write('OK\n');
        process.exit(0);
      },
      (err) => {
        process.stderr.write(`FAIL: ${err.message}\n`);
        process.exit(1);
      },
    );
    return;
  }
  process.stderr.write('usage: peer.js server <port-or-0> | peer.js client <ws-url>\n');
  process.exit(2);
}

main(process.argv.slice(2));
