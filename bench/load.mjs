// A small closed-loop HTTP load generator: CONCURRENCY keep-alive connections issue GETs
// back to back for DURATION_MS and the requests per second are printed as JSON. It runs as
// its own process so it does not share an event loop with the server it measures.
import http from 'node:http';

const [url, token, durationMs = '4000', concurrency = '32'] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(concurrency) });
const headers = token ? { authorization: `Bearer ${token}` } : {};
let done = 0;
let errors = 0;
const end = Date.now() + Number(durationMs);

function one() {
  return new Promise((resolve) => {
    const req = http.get(url, { agent, headers }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 200) done++;
        else errors++;
        resolve();
      });
    });
    req.on('error', () => {
      errors++;
      resolve();
    });
  });
}

async function worker() {
  while (Date.now() < end) await one();
}

const start = Date.now();
await Promise.all(Array.from({ length: Number(concurrency) }, worker));
const secs = (Date.now() - start) / 1000;
agent.destroy();
process.stdout.write(`${JSON.stringify({ rps: done / secs, requests: done, errors })}\n`);
