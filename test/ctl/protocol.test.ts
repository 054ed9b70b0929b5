/**
 * Framing and socket names of the control protocol.
 */
import t from 'tap';
import { LineReader, socketAddress, clientSocketAddress, encodeRequest } from '../../src/ctl/protocol.js';

t.test('lines are cut at newlines, across chunk boundaries', async (t) => {
  const r = new LineReader(100);
  const got: string[] = [];
  const text = Buffer.from('{"a":1}\n{"b":"é"}\n\n{"c":3}\npart');
  // Feed byte by byte: multi-byte UTF-8 characters split across chunks must survive.
  for (let i = 0; i < text.length; i++) t.ok(r.push(text.subarray(i, i + 1), (l) => got.push(l)) || true);
  t.same(got, ['{"a":1}', '{"b":"é"}', '', '{"c":3}']);
  t.equal(r.pending, 4, 'the unfinished line is held');
  const all: string[] = [];
  t.ok(new LineReader(100).push(text, (l) => all.push(l)));
  t.same(all, got, 'one chunk gives the same lines');
});

t.test('a line longer than the limit is an overflow, also when it arrives in pieces', async (t) => {
  const r = new LineReader(10);
  const got: string[] = [];
  t.ok(r.push(Buffer.from('0123456789\n'), (l) => got.push(l)), 'exactly the limit is fine');
  t.notOk(r.push(Buffer.from('01234567890\n'), (l) => got.push(l)), 'one more byte is not');
  const r2 = new LineReader(10);
  t.ok(r2.push(Buffer.from('012345'), () => t.fail('no line yet')));
  t.notOk(r2.push(Buffer.from('67890'), () => t.fail('no line')), 'no newline in sight and over the limit');
  t.same(got, ['0123456789']);
});

t.test('socket names: abstract by default, a path when it has a slash', async (t) => {
  t.same(socketAddress(), { path: '\0ulvs', display: '@ulvs', abstract: true });
  t.same(socketAddress('@lb1'), { path: '\0lb1', display: '@lb1', abstract: true });
  t.same(socketAddress('lb1'), { path: '\0lb1', display: '@lb1', abstract: true });
  t.same(socketAddress('/run/ulvs.sock'), { path: '/run/ulvs.sock', display: '/run/ulvs.sock', abstract: false });
  t.throws(() => socketAddress('@'));
  t.throws(() => socketAddress('a\0b'));
  t.same(clientSocketAddress({}), socketAddress('ulvs'));
  t.same(clientSocketAddress({ ULVS_SOCKET: '' }), socketAddress('ulvs'));
  t.same(clientSocketAddress({ ULVS_SOCKET: 'other' }), socketAddress('other'));
});

t.test('a request is one JSON line', async (t) => {
  const line = encodeRequest(3, 'zero', [null]);
  t.equal(line, '{"id":3,"op":"zero","args":[null]}\n');
});
