"""Label matchers (agent.routing.matchers); tables ported from Alertmanager's pkg/labels tests."""

from __future__ import annotations

import pytest

from agent.routing.matchers import (
    Matcher,
    MatcherError,
    MatchType,
    parse_matcher,
    parse_matchers,
)
from agent.routing.regex import Regex

EQ, NE, RE, NRE = MatchType.EQUAL, MatchType.NOT_EQUAL, MatchType.REGEX, MatchType.NOT_REGEX
Triple = tuple[str, MatchType, str]


def triples(matchers: list[Matcher]) -> list[Triple]:
    return [(m.name, m.type, m.value) for m in matchers]


# --- parse_matcher -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('severity="critical"', ("severity", EQ, "critical")),
        ('service=~"db|postgres"', ("service", RE, "db|postgres")),
        ("env=prod", ("env", EQ, "prod")),
        ("env!=prod", ("env", NE, "prod")),
        ("env!~prod.*", ("env", NRE, "prod.*")),
        ('  team  !=  "ops"  ', ("team", NE, "ops")),
        ("job=", ("job", EQ, "")),
        ('job=""', ("job", EQ, "")),
        ('_under_score9="x"', ("_under_score9", EQ, "x")),
        ('quote="a \\"b\\" c"', ("quote", EQ, 'a "b" c')),
        ('path="C:\\\\tmp"', ("path", EQ, "C:\\tmp")),
        ('multi="line1\\nline2"', ("multi", EQ, "line1\nline2")),
        # Spurious escapes stay literal, so RE2 escapes need no doubling.
        ('code=~"5\\d\\d"', ("code", RE, "5\\d\\d")),
        ('tab="a\\tb"', ("tab", EQ, "a\\tb")),
        ("tricky=~~~", ("tricky", RE, "~~")),
        ('trickier==\\\\=\\=\\"', ("trickier", EQ, '=\\=\\="')),
        ('spaced="  keep  "', ("spaced", EQ, "  keep  ")),
        ("unquoted=has spaces inside", ("unquoted", EQ, "has spaces inside")),
        ("comma=a,b", ("comma", EQ, "a,b")),
        ('"foo bar"="x"', ("foo bar", EQ, "x")),
        ('"dotted.name" =~ "v.*"', ("dotted.name", RE, "v.*")),
        ('"with \\"quote\\""="x"', ('with "quote"', EQ, "x")),
        ('emoji="🙂"', ("emoji", EQ, "🙂")),
        ("a='", ("a", EQ, "'")),
    ],
)
def test_parse_matcher(text: str, expected: Triple) -> None:
    assert triples([parse_matcher(text)]) == [expected]


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 1, "expected a label name, got end of input"),
        ('="x"', 1, "expected a label name, got '='"),
        ('9lives="x"', 1, "expected a label name, got '9'"),
        ('invalid-name = "valid label"', 8, "got '-' (names other than"),
        ("foo:bar=x", 4, "got ':'"),
        ("foo", 4, "got end of input"),
        ("foo ~= x", 5, "got '~='"),
        ("foo !x", 5, "got '!x'"),
        ('job="value', 5, "missing closing '\"' of the value"),
        ('job=value"', 10, "unescaped '\"' in an unquoted value"),
        ('contains_unescaped_quote = foo"bar', 31, "unescaped '\"'"),
        ('job="a" b', 9, "unexpected 'b' after the closing quote"),
        ('trickier==\\\\=\\=\\""', 18, "unescaped '\"'"),
        ('"foo=\\"bar"', 12, "got end of input"),
        ('"unterminated=x', 1, "missing closing '\"' of the label name"),
        ('""="x"', 1, "label name must not be empty"),
        ('{foo="bar"}', 1, "braces belong around a list"),
        ("foo=bar}", 8, "unexpected '}'"),
        ('svc=~"invalid[regexp"', 6, "invalid regular expression 'invalid[regexp'"),
        ('svc=~"a)|(b"', 6, "unexpected ): a)|(b"),
        ('svc!~"(a"', 6, "missing ): (a"),
    ],
)
def test_parse_matcher_errors_say_what_and_where(text: str, column: int, fragment: str) -> None:
    with pytest.raises(MatcherError) as info:
        parse_matcher(text)
    assert info.value.column == column
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"column {column}: ")


def test_matcher_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="label name"):
        parse_matcher("=x")


# --- parse_matchers (ported from Alertmanager's TestMatchers) ------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("{}", []),
        ("  { }  ", []),
        ("{foo='}", [("foo", EQ, "'")]),
        ("{foo=`}", [("foo", EQ, "`")]),
        ('{foo=\\"}', [("foo", EQ, '"')]),
        ("{foo=bar}", [("foo", EQ, "bar")]),
        ('{foo="bar"}', [("foo", EQ, "bar")]),
        ("{foo=~bar.*}", [("foo", RE, "bar.*")]),
        ('{foo=~"bar.*"}', [("foo", RE, "bar.*")]),
        ("{foo!=bar}", [("foo", NE, "bar")]),
        ('{foo!="bar"}', [("foo", NE, "bar")]),
        ("{foo!~bar.*}", [("foo", NRE, "bar.*")]),
        ('{foo!~"bar.*"}', [("foo", NRE, "bar.*")]),
        ('{foo="bar", baz!="quux"}', [("foo", EQ, "bar"), ("baz", NE, "quux")]),
        ('{foo="bar", baz!~"quux.*"}', [("foo", EQ, "bar"), ("baz", NRE, "quux.*")]),
        (
            '{foo="bar",baz!~".*quux", derp="wat"}',
            [("foo", EQ, "bar"), ("baz", NRE, ".*quux"), ("derp", EQ, "wat")],
        ),
        (
            '{foo="bar", instance=~"some-api.*"}',
            [("foo", EQ, "bar"), ("instance", RE, "some-api.*")],
        ),
        ('{foo=""}', [("foo", EQ, "")]),
        ('{foo="bar,quux", job="job1"}', [("foo", EQ, "bar,quux"), ("job", EQ, "job1")]),
        ('{foo = "bar", dings != "bums", }', [("foo", EQ, "bar"), ("dings", NE, "bums")]),
        ("foo=bar,dings!=bums", [("foo", EQ, "bar"), ("dings", NE, "bums")]),
        ("foo=bar, dings!=bums", [("foo", EQ, "bar"), ("dings", NE, "bums")]),
        (
            '{quote="She said: \\"Hi, ladies! That\'s gender-neutral…\\""}',
            [("quote", EQ, 'She said: "Hi, ladies! That\'s gender-neutral…"')],
        ),
        ('statuscode=~"5.."', [("statuscode", RE, "5..")]),
        ("tricky=~~~", [("tricky", RE, "~~")]),
        ('trickier==\\\\=\\=\\"', [("trickier", EQ, '=\\=\\="')]),
        (
            'contains_quote != "\\"" , contains_comma !~ "foo,bar" , ',
            [("contains_quote", NE, '"'), ("contains_comma", NRE, "foo,bar")],
        ),
        ("{foo=bar}}", [("foo", EQ, "bar}")]),
        ("{foo=bar}},}", [("foo", EQ, "bar}}")]),
        ("{foo=,bar=}}", [("foo", EQ, ""), ("bar", EQ, "}")]),
        ("{foo=bar\\t}", [("foo", EQ, "bar\\t")]),
        ("{foo=bar\\n}", [("foo", EQ, "bar\n")]),
        ("{foo=bar\\}", [("foo", EQ, "bar\\")]),
        ("{foo=bar\\\\}", [("foo", EQ, "bar\\")]),
        ('{foo=bar\\"}', [("foo", EQ, 'bar"')]),
        ('{"foo bar"="x", "a,b"=~"c,d"}', [("foo bar", EQ, "x"), ("a,b", RE, "c,d")]),
    ],
)
def test_parse_matchers(text: str, expected: list[Triple]) -> None:
    assert triples(parse_matchers(text)) == expected


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        (",", 1, "empty matcher before ','"),
        ("{,}", 2, "empty matcher before ','"),
        ("a=b,,c=d", 5, "empty matcher before ','"),
        ("a=b, ,c=d", 6, "empty matcher before ','"),
        ("{foo=", 6, "missing closing '}'"),
        ("{{foo=", 7, "missing closing '}'"),
        ("{foo=}b", 8, "missing closing '}'"),
        ("foo=bar}", 8, "unexpected '}' without an opening '{'"),
        ('job="value', 5, "missing closing '\"'"),
        ('{invalid-name = "valid label"}', 9, "got '-'"),
        ('a="b", c=~"[x"', 11, "invalid regular expression '[x'"),
        ('{a="b",\n bad!x}', 13, "got '!x'"),
        ('"{foo=\\"bar"}', 13, "unexpected '}' without"),
        ('"foo="bar""', 7, "got 'b'"),
        ('"{foo=\\"bar\\"}"', 16, "got end of input"),
    ],
)
def test_parse_matchers_errors_point_into_the_whole_input(
    text: str, column: int, fragment: str
) -> None:
    with pytest.raises(MatcherError) as info:
        parse_matchers(text)
    assert info.value.column == column
    assert fragment in str(info.value)


# --- matching -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "pattern", "value", "expected"),
    [
        (EQ, "bar", "bar", True),
        (EQ, "bar", "foo-bar", False),
        (NE, "bar", "bar", False),
        (NE, "bar", "foo-bar", True),
        (RE, "bar", "bar", True),
        (RE, "bar", "foo-bar", False),
        (RE, ".*bar", "foo-bar", True),
        (NRE, "bar", "bar", False),
        (NRE, "bar", "foo-bar", True),
        (NRE, ".*bar", "foo-bar", False),
        (RE, "foo.bar", "foo-bar", True),
        (RE, "foo\\.bar", "foo-bar", False),
        (RE, "foo\\.bar", "foo.bar", True),
        (EQ, "foo\nbar", "foo\nbar", True),
        (RE, "foo.bar", "foo\nbar", False),
        (RE, "(?s)foo.bar", "foo\nbar", True),
        (EQ, '~!="', '~!="', True),
        # Anchoring at both ends, including alternations.
        (RE, "db", "db2", False),
        (RE, "db", "mydb", False),
        (RE, "db|postgres", "db", True),
        (RE, "db|postgres", "postgres", True),
        (RE, "db|postgres", "postgres-replica", False),
        (RE, "db|postgres", "mydb", False),
        (NRE, "db|postgres", "postgres-replica", True),
        (NRE, "db", "db2", True),
        # RE2's '$' is end of text: no match before a trailing newline.
        (RE, "bar", "bar\n", False),
        (RE, "bar$\n?", "bar\n", False),
        (RE, "(?m)bar$\n?", "bar\n", True),
        (RE, "bar\\z", "bar", True),
    ],
)
def test_matches(type_: MatchType, pattern: str, value: str, expected: bool) -> None:
    assert Matcher("x", type_, pattern).matches({"x": value}) is expected


@pytest.mark.parametrize(
    ("text", "missing", "empty", "present"),
    [
        ('foo=""', True, True, False),
        ('foo!=""', False, False, True),
        ('foo="bar"', False, False, True),
        ('foo!="bar"', True, True, False),
        ('foo=~".*"', True, True, True),
        ('foo=~".+"', False, False, True),
        ('foo!~".+"', True, True, False),
        ('foo!~"bar"', True, True, False),
        ('foo=~"|bar"', True, True, True),
    ],
)
def test_missing_label_behaves_as_empty_value(
    text: str, missing: bool, empty: bool, present: bool
) -> None:
    m = parse_matcher(text)
    assert m.matches({"other": "bar"}) is missing
    assert m.matches({"foo": ""}) is empty
    assert m.matches({"foo": "bar"}) is present


# --- RE2 dialect ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("(?i)critical", ["CRITICAL", "Critical"], ["critical!"]),
        ("(?i)crit|warn", ["WARN", "Crit"], ["info"]),
        ("a(?i)b|c", ["aB", "C", "c"], ["AB", "b"]),
        ("(x(?i)y)z", ["xYz"], ["xYZ", "XYz"]),
        ("(?i:a)b", ["Ab"], ["AB"]),
        ("(?i)a(?-i:b)", ["Ab"], ["AB"]),
        ("\\d+", ["123"], ["١٢٣", "12a"]),
        ("\\w+", ["a_1"], ["é"]),
        ("[\\d.]+", ["1.5"], ["١"]),
        ("\\D", ["a"], ["1"]),
        ("[[:alpha:]]+[[:digit:]]", ["abc1"], ["abc", "1"]),
        ("[[:xdigit:]]{4}", ["beef"], ["beeg"]),
        ("a{,2}", ["a{,2}"], ["", "aa"]),
        ("\\Qa.b*\\E", ["a.b*"], ["axb", "a.bbb"]),
        ("\\x{41}\\101", ["AA"], ["x"]),
        ("(?<word>ab)+", ["abab"], ["aba"]),
        ("[]a]+", ["]a]"], ["b"]),
        ("[a-]+", ["a-a"], ["b"]),
        ("[[]", ["["], ["]"]),
        ("[a&&b]", ["&", "a"], ["c"]),
        ("[+--]", ["+", ",", "-"], ["."]),
        ("[a-c--]", ["b", "-"], ["d"]),
        # What Python's re could not express, so the translation to it refused.
        ("(?U)a+", ["a", "aaa"], [""]),
        ("\\pL+", ["abc", "été", "Ωμέγα"], ["a1", ""]),
        ("\\p{Greek}+", ["αβγ"], ["abc"]),
        ("\\PL", ["1", "-"], ["a", "é"]),
        ("[[:^alpha:]]+", ["123", "-_"], ["a1"]),
        # Unicode: one '.' or class per character, case folding beyond ASCII.
        ("caf.", ["café", "cafe"], ["caf", "café!"]),
        ("[^a]", ["é", "🙂"], ["a", "éé"]),
        ("(?i)ÉRABLE", ["érable", "Érable"], ["erable"]),
        ("🙂+|ü", ["🙂🙂", "ü"], ["u", "🙂ü"]),
        ("[à-ÿ]+", ["éü"], ["e"]),
        # Alertmanager's everyday shapes.
        ("(?i)(critical|warning)", ["Critical", "WARNING"], ["info", "critical "]),
        ("node-exporter|blackbox-.*", ["node-exporter", "blackbox-http"], ["node-exporterx"]),
        ("10\\.0\\.[0-9]{1,3}\\.[0-9]{1,3}:9100", ["10.0.3.7:9100"], ["10.0.3.7:91000"]),
        ("prod-(eu|us)-[a-z]+-\\d", ["prod-eu-west-1"], ["prod-ap-east-1", "prod-eu-west-"]),
        ("[[:upper:]][[:lower:]]+", ["Disk"], ["disk", "DISK"]),
        # The whole value must match, even when the first alternative matches a prefix.
        ("a|ab", ["a", "ab"], ["abc", "b"]),
        ("(a|ab)(c|bcd)", ["abcd", "ac", "abc"], ["abcdx"]),
    ],
)
def test_re2_patterns_keep_their_meaning(
    pattern: str, matching: list[str], not_matching: list[str]
) -> None:
    m = Matcher("x", RE, pattern)
    assert [v for v in matching if not m.matches({"x": v})] == []
    assert [v for v in not_matching if m.matches({"x": v})] == []


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        # Perl and Python features that RE2, and so Alertmanager, does not have.
        ("(a)\\1", "invalid escape sequence: \\1 (RE2 has no backreferences)"),
        ("(?P<n>a)(?P=n)", "invalid perl operator: (?P (RE2 has no lookaround, backreferences"),
        ("(?=x)x", "invalid perl operator: (?= (RE2 has no lookaround"),
        ("(?!x)y", "invalid perl operator: (?!"),
        ("(?<=x)y", "invalid perl operator: (?<="),
        ("(?<!x)y", "invalid perl operator: (?<!"),
        ("a(?#comment)", "invalid perl operator: (?#"),
        ("(?x)a b", "invalid perl operator: (?x"),
        ("\\Z", "invalid escape sequence: \\Z"),
        # Malformed.
        ("a)|(b", "unexpected ): a)|(b"),
        ("(a", "missing ): (a"),
        ("[a", "missing ]: [a"),
        ("a\\", "trailing \\"),
        ("*a", "no argument for repetition operator: *"),
        ("a**", "bad repetition operator: **"),
        ("x{1001}", "invalid repetition size: {1001}"),
        ("[z-a]", "invalid character class range: z-a"),
        ("[[:nope:]]", "invalid character class range: [:nope:]"),
        ("\ud800", "not valid UTF-8"),
    ],
)
def test_patterns_re2_rejects_are_matcher_errors(pattern: str, fragment: str) -> None:
    with pytest.raises(MatcherError) as info:
        Matcher("x", RE, pattern)
    assert str(info.value).startswith(f"invalid regular expression {pattern!r}: ")
    assert fragment in str(info.value)


def test_regex_is_compiled_once_at_construction() -> None:
    m = parse_matcher('x=~"a+"')
    assert isinstance(m._regex, Regex)
    assert m._regex.pattern == "a+"
    assert parse_matcher('x="a+"')._regex is None


# --- linear time on hostile values ---------------------------------------------------------

# 1 MiB of "prod" with no ":9100": Python's re tried every "prod" for the first '.*' and scanned
# the rest for ":9100" each time (0.12 s at 32 KiB, 2.7 s at 128 KiB, minutes here). RE2 answers
# in one pass; the timeout only turns a regression into a failure rather than a hang.
HOSTILE = "prod" * (1 << 18)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ('instance=~".*prod.*:9100.*"', HOSTILE, False),
        ('instance=~".*prod.*:9100.*"', HOSTILE + ":9100", True),
        ('instance=~".*prod.*:9100.*"', ":9100" + HOSTILE, False),
        ('instance!~".*prod.*:9100.*"', HOSTILE, True),
        ('instance=~"(.*prod)*:9100"', HOSTILE, False),
        ('instance=~"(p|pr|pro|prod)+x"', HOSTILE, False),
        ('instance=~"(?:[a-z]+)+:"', "a" * (1 << 20), False),
    ],
)
def test_hostile_label_values_are_matched_in_one_pass(
    text: str, value: str, expected: bool
) -> None:
    assert parse_matcher(text).matches({"instance": value}) is expected


# --- printing, equality, indexing ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "type_", "value", "expected"),
    [
        ("foo", EQ, "bar", 'foo="bar"'),
        ("foo", NE, "bar", 'foo!="bar"'),
        ("foo", RE, "bar", 'foo=~"bar"'),
        ("foo", NRE, "bar", 'foo!~"bar"'),
        ("foo", EQ, "back\\slash", 'foo="back\\\\slash"'),
        ("foo", EQ, 'double"quote', 'foo="double\\"quote"'),
        ("foo", EQ, "new\nline", 'foo="new\\nline"'),
        ("foo", EQ, "tab\tstop", 'foo="tab\tstop"'),
        ("foo", EQ, "🙂", 'foo="🙂"'),
        ("foo!", NE, "bar", '"foo!"!="bar"'),
        ("foo bar", EQ, "baz", '"foo bar"="baz"'),
        # Alertmanager leaves this unquoted; it must be quoted to parse back here.
        ("foo🙂", EQ, "bar", '"foo🙂"="bar"'),
        ("a:b", EQ, "", '"a:b"=""'),
        ('q"\\', EQ, "v", '"q\\"\\\\"="v"'),
    ],
)
def test_str_is_canonical(name: str, type_: MatchType, value: str, expected: str) -> None:
    assert str(Matcher(name, type_, value)) == expected


ROUND_TRIP_VALUES = [
    "",
    "plain",
    " leading and trailing ",
    'quote " inside',
    "back\\slash",
    "trailing backslash\\",
    "\\n literally",
    "real\nnewline",
    "tab\there",
    "\r\n",
    "comma, brace } { and = ~ !",
    "\\d+\\.(?i)x",
    "🙂 ünïcödé",
    '"',
    "\\",
    '\\"',
]


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES)
@pytest.mark.parametrize("name", ["job", "foo bar", 'we"ird\\', "a\nb"])
def test_str_parses_back_to_an_equal_matcher(name: str, value: str) -> None:
    for type_ in (EQ, NE):
        m = Matcher(name, type_, value)
        assert parse_matcher(str(m)) == m
        assert parse_matchers("{" + str(m) + ", " + str(m) + "}") == [m, m]


def test_regex_matchers_round_trip() -> None:
    for text in ['svc=~"db|postgres"', 'x!~"(?i)a\\"b"', 'x=~"5\\\\d"', 'x=~"[,}]"']:
        m = parse_matcher(text)
        assert parse_matcher(str(m)) == m


def test_matchers_are_frozen_hashable_values() -> None:
    a = parse_matcher('svc=~"db|pg"')
    b = Matcher("svc", RE, "db|pg")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, parse_matcher('svc!~"db|pg"')}) == 2
    assert "_regex" not in repr(a)
    with pytest.raises(AttributeError):
        a.value = "other"  # type: ignore[misc]


def test_direct_construction_validates() -> None:
    with pytest.raises(MatcherError, match="label name must not be empty"):
        Matcher("", EQ, "x")
    with pytest.raises(MatcherError, match="invalid regular expression"):
        Matcher("x", NRE, "(")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('severity="critical"', ("severity", "critical")),
        ("env=prod", ("env", "prod")),
        ('"foo bar"="x"', ("foo bar", "x")),
        ('severity=""', None),
        ('severity!="critical"', None),
        ('severity=~"critical"', None),
        ('severity!~"critical"', None),
    ],
)
def test_equality_exposes_only_indexable_matchers(
    text: str, expected: tuple[str, str] | None
) -> None:
    assert parse_matcher(text).equality() == expected
