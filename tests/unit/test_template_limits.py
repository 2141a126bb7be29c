"""Hostile templates: every one fails fast with a TemplateError, or renders a bounded result.

Each case once ran for seconds in C (where the SIGALRM deadline cannot interrupt) or allocated
gigabytes (issue 10, item 2). The corpus goes through ``render`` as the dispatcher and the
grouper call it; a case passes only if it finishes well inside the time budget and the
process's peak RSS stays bounded.
"""

from __future__ import annotations

import resource
import time
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agent.rendering import TemplateError, render
from agent.sandbox import MAX_OUTPUT_CHARS, RenderTimeout, render_scope

BIG = '("a"*60000)'  # a 60,000-character string built in the template
DAG = ('{% set ns = namespace(v=BIG) %}{% for i in range(40) %}'
       '{% set ns.v = NODE %}{% endfor %}')
MAX_SECONDS = 1.5  # the budget is 0.5 s; a C call cannot overshoot it by more than a little
MAX_RSS_GROWTH_KB = 256 * 1024

# (id, body, pattern the TemplateError must match)
REFUSED: list[tuple[str, str, str]] = [
    # str methods that expand in C
    ("replace", f'{{{{ {BIG}.replace("a", {BIG}) }}}}', "too large"),
    ("replace-empty", f'{{{{ {BIG}.replace("", {BIG}) }}}}', "too large"),
    ("center", '{{ "a".center(10**9) }}', "too large"),
    ("ljust", '{{ "a".ljust(10**9) }}', "too large"),
    ("rjust", '{{ "a".rjust(10**9, "x") }}', "too large"),
    ("zfill", '{{ "1".zfill(10**9) }}', "too large"),
    ("expandtabs", '{{ ("\t"*60000).expandtabs(60000) }}', "too large"),
    ("join-method", f'{{{{ {BIG}.join([{BIG}]*60) }}}}', "too large"),
    ("join-method-huge", f'{{{{ {BIG}.join([{BIG}]*60000) }}}}', "too large"),
    ("join-method-generator", '{{ "x".join(range(1000)|map("string")|map("center", 60000)) }}',
     "in all"),
    ("translate", f'{{{{ {BIG}.translate({{97: {BIG}}}) }}}}', "too large"),
    ("encode", '{{ "a".encode("utf-8") }}', "not available"),
    ("to-bytes", '{{ (1).to_bytes(10**9, "big") }}', "not available"),
    ("fromkeys", f'{{{{ {{}}.fromkeys(range(1000), {BIG}) }}}}', "not available"),
    ("markup-center", '{{ ("a"|e).center(10**9) }}', "too large"),
    ("markup-replace", f'{{{{ ({BIG}|e).replace("a", "<"*60000) }}}}', "too large"),
    # str.format and format specs
    ("format-width", '{{ "{:>999999999}".format(1) }}', "width or precision"),
    ("format-precision", '{{ "{:.999999999f}".format(1.0) }}', "width or precision"),
    ("format-nested-spec", '{{ "{0:{1}}".format(1, ">999999999") }}', "width or precision"),
    ("format-keyword-spec", '{{ "{:>{w}}".format(1, w=999999999) }}', "width or precision"),
    ("format-fields", f'{{{{ ("{{0}}"*20000).format({BIG}) }}}}', "too large"),
    ("format-map", f'{{{{ ("{{a}}"*20000).format_map({{"a": {BIG}}}) }}}}', "too large"),
    ("format-list", f'{{{{ "{{}}".format([{BIG}]*60) }}}}', "too large"),
    ("markup-format", '{{ (("{0}"*5)|e).format("<"*60000) }}', "too large"),
    # printf-style '%'
    ("percent-width", '{{ "%0999999999d" % 1 }}', "width or precision"),
    ("percent-precision", '{{ "%.999999999f" % 1.0 }}', "width or precision"),
    ("percent-star", '{{ "%*d" % (999999999, 1) }}', "'\\*' widths"),
    ("percent-star-precision", '{{ "%.*f" % (999999999, 1.0) }}', "'\\*' widths"),
    ("percent-percent-width", '{{ "%999999999%" % () }}', "width or precision"),
    ("percent-mapping", f'{{{{ ("%(a)s"*20000) % {{"a": {BIG}}} }}}}', "too large"),
    ("percent-list", f'{{{{ "%s" % ([{BIG}]*60) }}}}', "too large"),
    ("percent-markup", '{{ ("%s"|e) % ("<"*60000) }}', "too large"),
    ("format-filter", f'{{{{ ("%(a)s"*20000)|format(a={BIG}) }}}}', "too large"),
    ("format-filter-star", '{{ "%*d"|format(999999999, 1) }}', "'\\*' widths"),
    # operators
    ("repeat", '{{ "x" * 100000000 }}', "too large"),
    ("repeat-list", f'{{{{ [{BIG}] * 60000 }}}}', "too large"),
    ("repeat-tuple-then-percent", f'{{{{ ("%s"*20000) % (({BIG},)*20000) }}}}', "too large"),
    ("concat-doubling", '{% set ns = namespace(s="a") %}{% for i in range(40) %}'
     '{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}', "too large"),
    ("plus-doubling", '{% set ns = namespace(s="a") %}{% for i in range(40) %}'
     '{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}', "too large"),
    ("list-plus-doubling", '{% set ns = namespace(s=["a"]) %}{% for i in range(40) %}'
     '{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}', "too large"),
    ("tilde-chain", "{{ " + " ~ ".join([BIG] * 5) + " }}", "too large"),
    ("tilde-list", f'{{{{ ([{BIG}]*60) ~ "" }}}}', "too large"),
    ("power-tower", "{{ 10**(10**10) }}", "exponent"),
    ("power", "{{ 10 ** 100000000 }}", "exponent"),
    ("power-nested", "{{ ((2**64)**64)**64 }}", "exponent"),
    ("power-of-parsed-int", '{{ ("9"*4000)|int ** 20 }}', "exponent"),
    ("squaring-loop", '{% set ns = namespace(x=2**64) %}{% for i in range(40) %}'
     '{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x > 0 }}', "bits"),
    ("int-from-hex", '{{ ("f"*200000)|int(base=16) }}', "bits"),
    ("huge-int-to-str", "{{ 10**5000 }}", "digits"),
    # shared references: a graph that prints (compares, hashes) exponentially large
    ("dag-list", DAG.replace("BIG", '"a"').replace("NODE", "[ns.v, ns.v]") + "{{ ns.v }}",
     "too large"),
    ("dag-tuple-hash", DAG.replace("BIG", '("a",)').replace("NODE", "(ns.v, ns.v)")
     + "{{ {ns.v: 1} }}", "too large"),
    ("dag-dict", DAG.replace("BIG", '"a"').replace("NODE", '{"a": ns.v, "b": ns.v}')
     + "{{ ns.v|length }}", "too large"),
    ("dag-compare", DAG.replace("BIG", '"a"').replace("NODE", "[ns.v, ns.v]")
     + "{{ ns.v == ns.v[:] }}", "too large"),
    ("dag-macro", '{% macro d(x, n) %}{% if n %}{{ d([x, x], n - 1) }}{% else %}{{ x == x[:] }}'
     '{% endif %}{% endmacro %}{{ d("a", 40) }}', "too large"),
    ("dag-dict-global", DAG.replace("BIG", '"a"').replace("NODE", "dict(a=ns.v, b=ns.v)")
     + "{{ ns.v }}", "too large"),
    ("dag-namespace", '{% set ns = namespace(v="a") %}{% for i in range(40) %}'
     '{% set ns.v = namespace(a=ns.v, b=ns.v) %}{% endfor %}{{ ns }}', "too large"),
    ("print-big-list", f"{{{{ [{BIG}]*60 }}}}", "too large"),
    ("print-huge-list", f"{{{{ [{BIG}]*60000 }}}}", "too large"),
    ("string-big-list", f"{{{{ ([{BIG}]*60)|string }}}}", "too large"),
    ("tojson-big-list", f"{{{{ ([{BIG}]*60)|tojson }}}}", "too large"),
    ("pprint-big-list", f"{{{{ ([{BIG}]*60)|pprint }}}}", "too large"),
    ("pprint-deep-indent", '{% set ns = namespace(v=range(1000)|list) %}'
     '{% for i in range(10) %}'
     '{% set ns.v = {"k"*1000: ns.v} %}{% endfor %}{{ ns.v|pprint }}', "too large"),
    ("tojson-indent", '{{ [1]|tojson(indent=10**6) }}', "indent"),
    ("tojson-deep-indent", '{% set ns = namespace(v=range(1000)|list) %}{% for i in range(30) %}'
     '{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v|tojson(indent=16) }}', "too large"),
    # filters
    ("center-filter", '{{ "a"|center(10**9) }}', "too large"),
    ("indent-width", '{{ "a"|indent(10**9) }}', "too large"),
    ("indent-lines", '{{ ("a\n"*30000)|indent(60000) }}', "too large"),
    ("replace-filter", f'{{{{ {BIG}|replace("a", {BIG}) }}}}', "too large"),
    ("join-filter", f'{{{{ range(1000)|join({BIG}) }}}}', "too large"),
    ("join-filter-attribute", f'{{{{ ([{{"a": {BIG}}}]*60)|join(attribute="a") }}}}',
     "too large"),
    ("wordwrap", f'{{{{ ("a "*30000)|wordwrap(1, wrapstring={BIG}) }}}}', "too large"),
    ("urlize-target", '{{ "www.a.com"|urlize(target="x"*1000) }}', "longer than"),
    ("urlize-many", '{{ ("www.a.com "*10000)|urlize }}', "too large"),
    ("map-center", '{{ [1, 2, 3]|map("center", 10**9)|list }}', "too large"),
    ("map-replace-twice", f'{{{{ ["a"]|map("replace", "a", {BIG})|map("replace", "a", {BIG})'
     "|list }}", "too large"),
    ("attr-center", '{{ ("a"|attr("center"))(10**9) }}', "too large"),
    ("batch-count", '{{ [1]|batch(10**9, "x")|list }}', "count"),
    ("batch-fill", f'{{{{ [1]|batch(1000, [{BIG}]*60)|list }}}}', "too large"),
    ("slice-count", '{{ [1]|slice(10**9, "x")|list }}', "count"),
    ("sum-lists", '{{ ([[1]*100]*100)|sum(start=[]) }}', "number"),
    ("urlencode-expands", '{{ ("é"*60000)|urlencode }}', "too large"),
    ("round-int", "{{ 5|round(-10**9) }}", "precision"),
    ("round-ceil", '{{ 1.5|round(10**9, "ceil") }}', "precision"),
    ("lipsum-n", "{{ lipsum(n=10**9) }}", "too large"),
    ("lipsum-max", "{{ lipsum(max=10**9) }}", "too large"),
    ("range", "{{ range(10**9)|length }}", "range"),
    # output buffers: macros, call/filter/set blocks, block references, recursion
    ("macro-output", '{% macro m() %}{% for i in range(1000) %}{% for j in range(1000) %}'
     '{{ "a"*60000 }}{% endfor %}{% endfor %}{% endmacro %}{{ m()|length }}', "too large"),
    ("call-block", '{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}'
     '{% for i in range(1000) %}{{ "a"*60000 }}{% endfor %}{% endcall %}', "too large"),
    ("filter-block", '{% filter upper %}{% for i in range(1000) %}{{ "a"*60000 }}'
     "{% endfor %}{% endfilter %}", "too large"),
    ("set-block", '{% set x %}{% for i in range(1000) %}{{ "a"*60000 }}{% endfor %}{% endset %}'
     "{{ x|length }}", "too large"),
    ("self-block", '{% block b %}{% for i in range(1000) %}{{ "a"*60000 }}{% endfor %}'
     "{% endblock %}{{ self.b()|length }}", "larger than"),
    ("recursion-holding-copies", '{% macro r(n, s) %}{% if n %}{{ r(n - 1, s ~ "") }}'
     f'{{% endif %}}{{% endmacro %}}{{{{ r(300, {BIG}) }}}}', "in all"),
    ("recursion-holding-slices", '{% macro r(n, s) %}{% if n %}{{ r(n - 1, s[1:]) }}'
     f'{{% endif %}}{{% endmacro %}}{{{{ r(300, {BIG}) }}}}', "in all"),
    ("churn", '{% for i in range(1000) %}{% for j in range(1000) %}{% set x = "a"*60000 %}'
     "{% endfor %}{% endfor %}", "in all"),
    ("output", '{% for i in range(1000) %}{{ "y" * 1000 }}{% endfor %}', "larger than"),
    ("loops", "{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}"
     "{% endfor %}{% endfor %}{% endfor %}", "longer than"),
    ("recursive-loop", "{% for i in range(1000) recursive %}{{ loop(range(1000)) }}{% endfor %}",
     "larger than|longer than|recursion"),
]

# (id, body): hostile-looking, but the result is small and correct
BOUNDED: list[tuple[str, str, str]] = [
    ("truncate-huge-length", f"{{{{ ({BIG}|truncate(10**9))|length }}}}", "60000"),
    ("split", f'{{{{ {BIG}.split("a")|length }}}}', "60001"),
    ("list-of-chars", f"{{{{ {BIG}|list|length }}}}", "60000"),
    ("unique-of-repeats", f"{{{{ ([{BIG}]*60)|unique|list|length }}}}", "1"),
    ("compare-repeats", f"{{{{ ([{BIG}]*60) == ([{BIG}]*60) }}}}", "True"),
    ("hex-of-big-int", '{{ ("%x" % 2**60000)|length }}', "15001"),
    ("power-is-left-associative", "{{ 10**10**10 }}", "1" + "0" * 100),
    ("reverse", f"{{{{ ({BIG}|reverse)|length }}}}", "60000"),
]


def _rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# The deadline's exception can land in a gc callback (hypothesis installs one in this process),
# where Python reports it as unraisable and the render goes on; the alarm fires again and stops
# it (test_a_swallowed_deadline_fires_again). What counts is asserted: refused, and fast.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(("body", "needle"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_hostile_template_is_refused_fast(body: str, needle: str) -> None:
    rss = _rss_kb()
    started = time.monotonic()
    with pytest.raises(TemplateError, match=needle):
        render(body, {})
    assert time.monotonic() - started < MAX_SECONDS
    assert _rss_kb() - rss < MAX_RSS_GROWTH_KB


def test_a_swallowed_deadline_fires_again() -> None:
    with pytest.raises(RenderTimeout), render_scope(0.05):
        try:
            while True:
                pass
        except RenderTimeout:
            pass  # as a gc callback or a __del__ swallows what is raised in it
        bound = time.monotonic() + 2.0
        while time.monotonic() < bound:
            pass
        pytest.fail("the deadline did not fire again")
    with render_scope(5.0):  # a later render is not hit by the earlier deadline
        bound = time.monotonic() + 0.1
        while time.monotonic() < bound:
            pass


def test_a_deadline_that_passes_while_the_scope_starts_stays_inside_it() -> None:
    """A stall right after the timer is set (a 1 µs deadline stands in for it): the alarm
    never escapes ``__enter__``, the render still stops, and nothing fires after the scope."""
    with pytest.raises(RenderTimeout), render_scope(1e-6):
        bound = time.monotonic() + 2.0
        while time.monotonic() < bound:
            pass
        pytest.fail("the deadline never fired in the render")
    stray = 0
    bound = time.monotonic() + 0.1
    while time.monotonic() < bound:
        try:
            time.sleep(0.001)
        except RenderTimeout:
            stray += 1
    assert stray == 0


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in BOUNDED],
                         ids=[c[0] for c in BOUNDED])
def test_hostile_looking_template_renders_bounded(body: str, expected: str) -> None:
    rss = _rss_kb()
    started = time.monotonic()
    assert render(body, {}) == expected
    assert time.monotonic() - started < MAX_SECONDS
    assert _rss_kb() - rss < MAX_RSS_GROWTH_KB


def test_limits_apply_to_variables_from_the_sender() -> None:
    # The template is harmless; the data makes it expand (a rule template over alert text).
    text = "a" * 16_000
    with pytest.raises(TemplateError, match="too large"):
        render("{{ text.replace('a', text) }}", {"text": text})
    with pytest.raises(TemplateError, match="too large"):
        render("{{ text|center(n) }}", {"text": text, "n": 10**9})


@pytest.mark.parametrize(
    ("body", "variables", "expected"),
    [
        ("{{ '%05d|%-4s|%.2f|%x|%%' % (42, 'ab', 3.14159, 255) }}", {}, "00042|ab  |3.14|ff|%"),
        ("{{ '%(host)s is %(state)s' % labels }}", {"labels": {"host": "db1", "state": "down"}},
         "db1 is down"),
        ("{{ '{:>6}|{:<3}|{:.1f}|{}'.format('r', 'l', 2.25, [1]) }}", {}, "     r|l  |2.2|[1]"),
        ("{{ '{a}-{b}'.format_map(m) }}", {"m": {"a": 1, "b": 2}}, "1-2"),
        ("{{ hosts|join(', ') }} {{ ', '.join(hosts) }}", {"hosts": ["a", "b"]}, "a, b a, b"),
        ("{{ 'x'|center(5) }}|{{ 'ab'.ljust(4) }}|{{ '7'.zfill(3) }}", {}, "  x  |ab  |007"),
        ("{{ 'a-b-c'.replace('-', ' + ') }}", {}, "a + b + c"),
        ("{{ ('ab' * 3) ~ ([1] * 2)|string }}", {}, "ababab[1, 1]"),
        ("{{ (2 ** 10, 7 % 3, [1] + [2], 'a' + 'b') }}", {}, "(1024, 1, [1, 2], 'ab')"),
        ("{{ m|tojson }} {{ m|pprint }}", {"m": {"b": 1, "a": [1, 2]}},
         '{"a": [1, 2], "b": 1} {\'a\': [1, 2], \'b\': 1}'),
        ("{{ [1, 2]|tojson(indent=1) }}", {}, "[\n 1,\n 2\n]"),
        ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"x": 1, "y": 2}},
         "x=1;y=2;"),
        ("{{ 'a\nb'|indent(2, first=true) }}|{{ 'abc def'|wordwrap(3) }}", {},
         "  a\n  b|abc\ndef"),
        ("{{ items|batch(2, '-')|list }} {{ items|slice(2)|list }}", {"items": [1, 2, 3]},
         "[[1, 2], [3, '-']] [[1, 2], [3]]"),
        ("{{ nums|sum }} {{ '%s'|format(nums[1:]) }} {{ 'ff'|int(base=16) }}",
         {"nums": [1, 2, 3]}, "6 [2, 3] 255"),
        ("{% macro row(x) %}<{{ x }}>{% endmacro %}{% for a in alerts %}{{ row(a.name) }}"
         "{% endfor %}{% set s %}S{% endset %}{{ s }}", {"alerts": [{"name": "n1"}]}, "<n1>S"),
        ("{{ 'www.a.com'|urlize }}", {},
         '<a href="https://www.a.com" rel="noopener">www.a.com</a>'),
        ("{{ dict(a=1)|dictsort }} {% set ns = namespace(n=0) %}{% set ns.n = ns.n + 1 %}"
         "{{ ns.n }}", {}, "[('a', 1)] 1"),
    ],
)
def test_everyday_templates_still_render(body: str, variables: dict[str, Any],
                                         expected: str) -> None:
    assert render(body, variables) == expected


def test_output_limit_is_the_documented_one() -> None:
    assert len(render("{{ 'a' * n }}", {"n": MAX_OUTPUT_CHARS})) == MAX_OUTPUT_CHARS
    with pytest.raises(TemplateError, match="larger than"):
        render("{{ 'a' * n }}", {"n": MAX_OUTPUT_CHARS + 1})


# The limits change no result: the same output as Jinja's own immutable sandbox.
SAME_AS_JINJA = [
    "{% for a, b in [(1, 2), (3, 4)] %}{{ a }}{{ b }}{% endfor %}",
    "{% set a, b = (1, 2) %}{{ a + b }}",
    "{% macro m(a, b=(1, 2)) %}{{ a }}{{ b }}{% endmacro %}{{ m(0) }}",
    "{{ nums[1:2] }}{{ nums[::2] }}{{ name[::-1] }}",
    "{{ {'a': [1, {'b': (2,)}]} }}",
    "{% macro m() %}[{{ caller(1) }}]{% endmacro %}{% call(x) m() %}c{{ x }}{% endcall %}",
    "{% filter upper %}abc{{ name }}{% endfilter %}",
    "{% autoescape true %}{{ '<' ~ name }}{{ name }}{% endautoescape %}",
    "{% for a in alerts recursive %}{{ loop.index }}{{ loop.cycle('x', 'y') }}{% endfor %}",
    "{% set x | upper %}in {{ name }}{% endset %}{{ x }}",
    "{%- for a in alerts -%} {{ a.labels.a }} {%- endfor %}",
    "{{ alerts|map(attribute='labels.a')|join(',') }} "
    "{{ alerts|selectattr('status', 'eq', 'firing')|list|length }} {{ alerts|groupby('status') }}",
    "{{ nums|sort|reverse|list }} {{ nums|max }} {{ nums|sum }} {{ nums|unique|list }}",
    "{{ '%s-%d' % ('a', 1) }} {{ 'x' ~ 1 ~ none }} {{ 1 + 2 * 3 ** 2 }} {{ 7 // 2 }} {{ 7 / 2 }}",
    "{{ 'a,b'.split(',') }} {{ 'abc'.upper() }} {{ name.replace('<', '') }}",
    "{{ 'Hello {}!'.format(name) }} {{ '{a}'.format_map({'a': 1}) }}",
    "{{ dict(a=1, b=2)|dictsort }} {{ {'b': 1}.items()|list }} {{ {'b': 1}.get('b') }}",
    "{% set ns = namespace(total=0) %}{% for n in nums %}{% set ns.total = ns.total + n %}"
    "{% endfor %}{{ ns.total }} {{ ns }}",
    "{{ range(5)|batch(2)|list }} {{ range(5)|slice(2)|list }}",
    "{{ nums|tojson }} {{ name|tojson }} {{ name|e }} {{ 'x'|center(5) }}|",
    "{{ 'a\nb'|indent(2, true) }} {{ 'long text here'|wordwrap(5) }} "
    "{{ 'abcdef'|truncate(5, true, '..', 0) }}",
    "{{ 3.14159|round(2) }} {{ 1234|round(-2) }} {{ 2.5|round(1, 'floor') }} "
    "{{ '42'|int + 1 }} {{ -3|abs }} {{ 1234567|filesizeformat }}",
    "{{ name|urlencode }} {{ 'http://x.com a'|urlize }} {{ '<b>x</b>'|striptags }}",
    "{{ {'a': 1}|xmlattr }} {{ [1, [2]]|pprint }} {{ ['a', 'b']|first }}{{ ['a', 'b']|last }}",
    "{% with x = 5 %}{{ x }}{% endwith %}{% set l = nums + [9] %}{{ l }}{{ (1, 2) + (3,) }}",
    "{% block b %}B{{ name }}{% endblock %}{{ self.b() }}",
    "{% macro r(n) %}{% if n %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(3) }}",
    "{{ joiner(',')() }}{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.current }}",
]


@pytest.mark.parametrize("body", SAME_AS_JINJA)
def test_limited_sandbox_renders_like_jinja(body: str) -> None:
    variables = {"alerts": [{"labels": {"a": "1"}, "status": "firing"},
                            {"labels": {"a": "2"}, "status": "resolved"}],
                 "name": "n<&>", "nums": [3, 1, 2]}
    jinja = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
    assert render(body, variables) == jinja.from_string(body).render(variables)
