// Strict mode, JavaScript: the candidate (node -e codec.js + this, argv: IN OUT). It defines the
// sample's function from prompt + completion and answers calls with plain data; it never sees the tests.
const IN = Number(process.argv[1]), OUT = Number(process.argv[2]);
const setup = rx(IN);
globalThis.require = require;
let fn;
try {
  vm.runInThisContext(setup.program, { filename: 'program.js' });
  fn = globalThis[setup.name];
  if (typeof fn !== 'function') throw new ReferenceError(setup.name + ' is not defined');
} catch (e) { tx(OUT, ['error', describe(e)]); process.exit(0); }
tx(OUT, ['ready']);
for (;;) {
  let req;
  try { req = rx(IN); } catch (e) { process.exit(0); }
  let reply;
  try { reply = ['ok', encode(fn(...decode(req[1], 0)), 0)]; }
  catch (e) {
    if (e instanceof TransferError) reply = ['error', 'strict: ' + e.message];
    else { let n = 'Error', m = ''; try { n = String(e && e.name); m = String(e && e.message).slice(0, 300); } catch (_) {} reply = ['exc', n.slice(0, 100), m]; }
  }
  tx(OUT, reply);
}
