import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePrometheusText } from './parse.ts';

describe('parsePrometheusText', () => {
  it('parses samples, labels, escapes, special values, timestamps and comments', () => {
    const text = [
      '# a free comment',
      '# HELP m A metric with \\\\ and \\n in help.',
      '# TYPE m gauge',
      'm{a="x\\\\y",b="say \\"hi\\"",c="l1\\nl2"} 1.5e3 1700000000000',
      'm{ a = "2" , } -Inf',
      'm{a="3"} NaN',
      '',
      'untyped_thing +Inf',
      '',
    ].join('\n');
    const samples = parsePrometheusText(text);
    assert.equal(samples.length, 4);
    assert.deepEqual(samples[0], {
      name: 'm',
      labels: { a: 'x\\y', b: 'say "hi"', c: 'l1\nl2' },
      value: 1500,
    });
    assert.deepEqual(samples[1], { name: 'm', labels: { a: '2' }, value: Number.NEGATIVE_INFINITY });
    assert.ok(Number.isNaN(samples[2].value));
    assert.deepEqual(samples[3], { name: 'untyped_thing', labels: {}, value: Number.POSITIVE_INFINITY });
    assert.deepEqual(parsePrometheusText(''), []);
  });

  it('attributes _bucket/_sum/_count to a declared histogram and requires le on buckets', () => {
    const ok = '# TYPE h histogram\nh_bucket{le="1"} 0\nh_bucket{le="+Inf"} 1\nh_sum 3\nh_count 1\n';
    assert.equal(parsePrometheusText(ok).length, 4);
    assert.throws(() => parsePrometheusText('# TYPE h histogram\nh_bucket 0\n'), /le label/);
    assert.throws(() => parsePrometheusText('# TYPE h histogram\nh_bucket{le="x"} 0\n'), /le label/);
    assert.throws(() => parsePrometheusText('# TYPE h histogram\nh 0\n'), /without a suffix/);
  });

  const bad: [string, string, RegExp][] = [
    ['missing final newline', 'm 1', /end with a newline/],
    ['bad escape', 'm{a="\\t"} 1\n', /invalid escape/],
    ['unterminated value', 'm{a="x} 1\n', /unterminated/],
    ['unquoted value', 'm{a=x} 1\n', /quoted value/],
    ['duplicate label', 'm{a="1",a="2"} 1\n', /duplicate label/],
    ['bad value', 'm 1x\n', /invalid value/],
    ['missing value', 'm{a="1"}\n', /expected a value/],
    ['bad timestamp', 'm 1 1.5\n', /invalid timestamp/],
    ['bad metric name', '1m 1\n', /metric name/],
    ['unknown type', '# TYPE m widget\n', /unknown type/],
    ['second TYPE', '# TYPE m gauge\n# TYPE m gauge\n', /second TYPE/],
    ['second HELP', '# HELP m a\n# HELP m b\n', /second HELP/],
    ['TYPE after samples', 'm 1\n# TYPE m gauge\n', /after its samples/],
    ['ungrouped family', 'a 1\nb 1\na 2\n', /not grouped/],
    ['bad HELP escape', '# HELP m a\\tb\n', /invalid escape/],
  ];
  for (const [what, text, error] of bad) {
    it(`rejects ${what}`, () => {
      assert.throws(() => parsePrometheusText(text), error);
    });
  }

  it('reports the line number', () => {
    assert.throws(() => parsePrometheusText('ok 1\nok 2\nbad{ 3\n'), /^Error: line 3:/);
  });
});
