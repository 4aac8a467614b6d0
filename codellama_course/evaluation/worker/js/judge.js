// Strict mode, JavaScript: the judge (node -e codec.js + this, argv: TO FROM VERDICT NAME TESTS).
// It runs the trusted tests with the entry point replaced by a stub that calls the candidate, and
// writes the verdict ('P', or 'F' + why) to its private pipe.
const TO = Number(process.argv[1]), FROM = Number(process.argv[2]), VERDICT = Number(process.argv[3]);
const name = process.argv[4];
const tests = Buffer.from(process.argv[5], 'base64').toString('utf8');
class CandidateFailed extends Error {}
const ERRORS = { Error, TypeError, RangeError, ReferenceError, SyntaxError, EvalError, URIError };
function verdict(s) { writeAll(VERDICT, Buffer.from(s, 'utf8')); process.exit(0); }
function ask() {
  try { return rx(FROM); } catch (e) { throw new CandidateFailed('strict: candidate process died or sent garbage'); }
}
try {
  const hello = ask();
  if (Array.isArray(hello) && hello[0] === 'error') throw new CandidateFailed(String(hello[1]));
  if (!Array.isArray(hello) || hello[0] !== 'ready') throw new CandidateFailed('strict: unexpected message from candidate');
  globalThis.require = require;
  globalThis[name] = function (...args) {
    let payload;
    try { payload = encode(args, 0); } catch (e) { throw new CandidateFailed("strict: cannot pass the test's argument (" + e.message + ')'); }
    tx(TO, ['call', payload]);
    const r = ask();
    if (Array.isArray(r) && r[0] === 'ok' && r.length === 2) {
      try { return decode(r[1], 0); } catch (e) { throw new CandidateFailed('strict: malformed return value'); }
    }
    if (Array.isArray(r) && r[0] === 'exc' && r.length === 3) {
      const E = ERRORS[String(r[1])] || Error;
      throw new E(E === Error && r[1] !== 'Error' ? String(r[1]) + ': ' + String(r[2]) : String(r[2]));
    }
    if (Array.isArray(r) && r[0] === 'error') throw new CandidateFailed(String(r[1]).slice(0, 300));
    throw new CandidateFailed('strict: unexpected message from candidate');
  };
  vm.runInThisContext(tests, { filename: 'tests.js' });
} catch (e) {
  verdict('F' + (e instanceof CandidateFailed ? e.message : describe(e)));
}
verdict('P');
