"""Driver version ordering and specifiers as vendors write versions (envctl/versions.py).

Versions are the ones vendors print: Ascend `version.info` / `npu-smi info` (23.0.rc2, 23.0.3,
24.1.rc1, 24.1.rc2.1, 24.1.rc2.2, 24.1.rc3.7, 25.0.rc1.1, 25.3.rc1, in public deployment notes),
release notes' upper-case spelling (24.1.RC2, the MindSpore 2.3.0 driver), CANN toolkit builds
(7.0.RC1, 7.0.0.beta1, 8.0.RC2.alpha003), Cambricon drivers (4.20.11, 5.10.22) and NVIDIA's
(535.104.05).
"""

import itertools

import pytest

from envctl.versions import SpecifierError, parse_specifier, parse_version, satisfies

ORDERED_CHAINS = [
    ["23.0.rc1", "23.0.rc2", "23.0.rc3", "23.0.0", "23.0.1"],
    ["24.1.rc2", "24.1.rc2.1", "24.1.rc2.2", "24.1.rc3", "24.1.rc3.7", "24.1.0"],
    ["8.0.RC2.alpha003", "8.0.RC2.beta1", "8.0.RC2", "8.0.RC3", "8.0.0"],
    ["7.0.RC1", "7.0.0.beta1", "7.0.0", "7.0.1"],
    ["24.1.0", "25.0.rc1", "25.0.rc1.1", "25.3.rc1"],
    ["4.20.9", "4.20.11", "5.10.13", "5.10.22", "6.2.10"],
    ["535.54.03", "535.104.05"],
]


@pytest.mark.parametrize("chain", ORDERED_CHAINS, ids=lambda c: " < ".join(c))
def test_vendor_versions_are_ordered_release_candidates_before_the_release(chain):
    parsed = [parse_version(v) for v in chain]
    for (a, va), (b, vb) in itertools.combinations(zip(chain, parsed), 2):
        assert va < vb and not vb < va and not va == vb, f"{a} should be older than {b}"


@pytest.mark.parametrize("a,b", [("24.1.RC2", "24.1.rc2"), ("v5.10.22", "5.10.22"), ("23.0.0", "23.0"),
                                 ("24.1.rc2", "24.1.rc2.0"), ("8.0.rc2.ALPHA003", "8.0.RC2.alpha003")])
def test_spellings_of_one_version_are_equal(a, b):
    assert parse_version(a) == parse_version(b)


@pytest.mark.parametrize("found,required,expected", [
    # the case: a patch of 24.1.RC2 as version.info writes it
    ("24.1.rc2.2", ">=24.1.rc2", True),
    ("24.1.rc2.2", ">=24.1.RC2", True),
    ("24.1.rc2.2", ">=24.1.rc3", False),
    ("24.1.rc2.2", "<24.1.0", True),  # rc releases are older than the final one, never excluded
    ("24.1.rc3", "<24.1.0", True),
    ("24.1.0", "<24.1.0", False),
    ("23.0.rc3", ">=23.0.rc3", True),
    ("23.0.rc3.1", ">=23.0.rc3", True),
    ("23.0.0", ">=23.0.rc3", True),
    ("23.0.rc2", ">=23.0.rc3", False),
    ("24.1.rc2", "==24.1.rc2", True),
    ("24.1.rc2.2", "==24.1.rc2", False),
    ("24.1.rc2.2", "==24.1.rc2.*", True),
    ("24.1.rc3", "==24.1.rc2.*", False),
    ("24.1.rc3", "==24.1.*", True),
    ("24.1.rc3", "!=24.1.*", False),
    ("24.1.rc2", "~=24.1.rc2", True),   # >= 24.1.rc2 and == 24.1.*
    ("24.1.0", "~=24.1.rc2", True),
    ("25.0.rc1", "~=24.1.rc2", False),
    ("23.0.rc2", ">=23.0.rc1, <24.1.0", True),
    ("24.1.0", ">=23.0.rc1, <24.1.0", False),
    ("4.20.11", ">=4.20.9", True),
    ("4.20.11", ">=5.10.22", False),
    ("5.10.22", ">=5.10.22", True),
    ("535.104.05", ">=535.54", True),
    ("5.10.22", "~=5.10.0", True),
    ("6.2.10", "~=5.10.0", False),
])
def test_specifiers_admit_the_versions_they_name(found, required, expected):
    assert satisfies(found, required) is expected


@pytest.mark.parametrize("found", ["unknown", "", "rc1", "b050.23"])
def test_a_version_that_cannot_be_ordered_is_none_not_a_verdict(found):
    assert satisfies(found, ">=23.0.rc1") is None


@pytest.mark.parametrize("found,required,expected", [
    # Components as written count in ==X.* and ~= (PEP 440): trailing zeros are not dropped there.
    ("5.11.0", "~=5.10.0", False),   # ~=5.10.0 is >=5.10.0, ==5.10.*
    ("5.10.30", "~=5.10.0", True),
    ("25.1.0", "~=24.0", False),     # ~=24.0 is >=24.0, ==24.*
    ("24.5.1", "~=24.0", True),
    ("24.1.0", "==24.0.*", False),
    ("24.0.rc1", "==24.0.*", True),
    ("24.0.rc1", "!=24.0.*", False),
    ("24.1.5", "==24.1.0.*", False),
    ("24.1.0.1", "==24.1.0.*", True),
    ("24.1.0", "==24.1", True),      # outside ==X.* and ~=, a missing component is 0
    ("535.104.05", "==535.104.5", True),
])
def test_written_components_bound_wildcards_and_compatible_release(found, required, expected):
    assert satisfies(found, required) is expected


# Found versions with a component envctl cannot order, as hosts print them: `npu-smi info` headers
# "Version: 25.0.rc1.b010" (a 910B host's environment dump beside vllm-ascend), "Version:
# 23.0.rc1.b050" (a 910A host, an npu-smi parser's test data), "Version: 20.2.2.spc001" (npu-smi
# 1.8.21 on an A800-9000 cluster's user guide), and a Cambricon package's "5.10.22-1". They lie
# inside their orderable head's range; a specifier decided alike across it gets an answer.
@pytest.mark.parametrize("found,required,expected", [
    ("25.0.rc1.b010", ">=24.1.0", True),
    ("25.0.rc1.b010", ">=25.0.0", False),
    ("25.0.rc1.b010", "<25.0.0", True),
    ("25.0.rc1.b010", "==25.0.*", True),
    ("25.0.rc1.b010", "==25.0.rc1.*", True),
    ("25.0.rc1.b010", "!=25.0.rc1.*", False),
    ("25.0.rc1.b010", "~=25.0", False),   # >=25.0 excludes 25.0's release candidates
    ("25.0.rc1.b010", ">=25.0.rc1", None),  # a build of 25.0.rc1: before or after it, unknown
    ("25.0.rc1.b010", "==25.0.rc1", None),
    ("25.0.rc1.b010", "~=25.0.rc1", None),
    ("25.0.rc1.b010", "==25.0.rc1.1.*", None),
    ("25.0.rc1.b010", ">=24.1.0, <25.0.rc1", None),
    ("23.0.RC3.B050", ">=23.0.rc1", True),
    ("23.0.rc1.b050", ">=23.0.rc2", False),
    ("23.0.RC3.B050", ">=23.0.rc3", None),
    ("20.2.2.spc001", ">=20.1", True),
    ("20.2.2.spc001", ">=21.0.rc1", False),
    ("20.2.2.spc001", "==20.2.2", None),
    ("5.10.22-1", ">=5.0", True),
    ("5.10.22-1", ">=5.10.22", None),
])
def test_a_version_with_an_unorderable_tail_is_answered_when_its_range_decides(found, required, expected):
    assert satisfies(found, required) is expected


@pytest.mark.parametrize("text,reason", [
    ("at least 5.10", None),
    (">=5.10,", None),
    (">=23.0.RC3.B050", "'23.0.RC3.B050' is not a version envctl can order (component 'b050')"),
    (">=5.10.*", "'>=5.10.*': a trailing .* is only allowed with == or !="),
    ("~=5", "'~=5': ~= needs at least two components (e.g. ~=5.10)"),
])
def test_specifiers_that_cannot_be_read_say_why(text, reason):
    with pytest.raises(SpecifierError) as caught:
        parse_specifier(text)
    assert caught.value.reason == reason
