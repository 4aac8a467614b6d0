// Strict mode, JavaScript: shared by both node processes (prepended to candidate.js and judge.js).
// Framing over blocking pipes (4-byte big-endian length + JSON, as the Python worker's) and a
// type-exact plain-data codec: only null, undefined, booleans, numbers, bigints, strings, arrays
// and plain objects cross between the candidate and the judge.
const fs = require('fs');
const vm = require('vm');
const LIMIT = 64 * 1024 * 1024;
function readN(fd, n) {
  const buf = Buffer.alloc(n); let off = 0;
  while (off < n) {
    let k;
    try { k = fs.readSync(fd, buf, off, n - off, null); }
    catch (e) { if (e.code === 'EAGAIN') continue; throw e; }
    if (k === 0) throw new Error('EOF');
    off += k;
  }
  return buf;
}
function writeAll(fd, buf) {
  let off = 0;
  while (off < buf.length) {
    try { off += fs.writeSync(fd, buf, off, buf.length - off); }
    catch (e) { if (e.code === 'EAGAIN') continue; throw e; }
  }
}
function rx(fd) {
  const n = readN(fd, 4).readUInt32BE(0);
  if (n > LIMIT) throw new Error('frame too large');
  return JSON.parse(readN(fd, n).toString('utf8'));
}
function tx(fd, obj) {
  const body = Buffer.from(JSON.stringify(obj), 'utf8');
  const head = Buffer.alloc(4); head.writeUInt32BE(body.length, 0);
  writeAll(fd, Buffer.concat([head, body]));
}
class TransferError extends Error {}
function encode(v, depth) {
  if (depth > 200) throw new TransferError('value nested too deeply');
  if (v === null) return ['N'];
  if (v === undefined) return ['u'];
  const t = typeof v;
  if (t === 'boolean') return ['b', v];
  if (t === 'number') return ['n', Object.is(v, -0) ? '-0' : String(v)];
  if (t === 'bigint') return ['B', v.toString()];
  if (t === 'string') return ['s', v];
  if (Array.isArray(v)) { const out = []; for (let i = 0; i < v.length; i++) out.push(encode(v[i], depth + 1)); return ['a', out]; }
  if (t === 'object') {
    const proto = Object.getPrototypeOf(v);
    if (proto === Object.prototype || proto === null) return ['o', Object.keys(v).map((k) => [String(k), encode(v[k], depth + 1)])];
  }
  let name = t;
  try { name = (v && v.constructor && v.constructor.name) || t; } catch (e) {}
  throw new TransferError('cannot transfer a value of type ' + String(name));
}
const NUM = /^(-?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?|-?Infinity|NaN)$/i;
function decode(x, depth) {
  if (depth > 200 || !Array.isArray(x) || typeof x[0] !== 'string') throw new TransferError('malformed value');
  const tag = x[0], v = x[1];
  if (tag === 'N' && x.length === 1) return null;
  if (tag === 'u' && x.length === 1) return undefined;
  if (x.length === 2) {
    if (tag === 'b' && typeof v === 'boolean') return v;
    if (tag === 'n' && typeof v === 'string' && NUM.test(v)) return Number(v);
    if (tag === 'B' && typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
    if (tag === 's' && typeof v === 'string') return v;
    if (tag === 'a' && Array.isArray(v)) return v.map((e) => decode(e, depth + 1));
    if (tag === 'o' && Array.isArray(v)) {
      const out = {};
      for (const pair of v) {
        if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string') throw new TransferError('malformed object');
        Object.defineProperty(out, pair[0], { value: decode(pair[1], depth + 1), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
  }
  throw new TransferError('malformed value');
}
function describe(e) {
  let name = 'Error', msg = '';
  try { name = String((e && e.name) || typeof e); msg = String((e && e.message) || ''); } catch (_) {}
  msg = msg.split('\n')[0];
  return (name === 'AssertionError' || !msg ? name : name + ': ' + msg).slice(0, 300);
}
