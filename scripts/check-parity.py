#!/usr/bin/env python3
"""Kotlin/Swift parity: the public API of the two thin layers and the
scenarios of their tests.

Lists every public function and property of the Kotlin layer
(android/src/main/kotlin/im/waxwing/*.kt: class Waxwing, objects
WaxwingPush, WaxwingLog and WaxwingAndroid) and of the Swift layer (ios/Sources/Waxwing/*.swift:
class WaxwingSession, enums WaxwingPush and WaxwingLog), matches them by name (through NAME_MAP
for idiomatic differences) and number of parameters, and the same for the
tests (Kotlin `@Test fun x` against Swift `func testX`). Prints what one
side has and the other lacks, then "parity: N passed, M failed"; exits
non-zero on any difference. Events need no check: both sides hand out the
one `Event` type uniffi generates from bindings/src/types.rs.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
KOTLIN = sorted((ROOT / "android/src/main/kotlin/im/waxwing").glob("*.kt"))
KOTLIN_TESTS = ROOT / "android/src/test/kotlin/im/waxwing/WaxwingTest.kt"
SWIFT = sorted((ROOT / "ios/Sources/Waxwing").glob("*.swift"))
SWIFT_TESTS = sorted((ROOT / "ios/Tests/WaxwingTests").glob("*.swift"))

# Kotlin name -> Swift name, where Swift says it its own way.
NAME_MAP = {
    "Waxwing.open": "WaxwingSession.init",  # a factory in Kotlin, a throwing init in Swift
    "Waxwing.sendMessage": "WaxwingSession.send",  # send(_ body:, to:)
}
# Platform-only items, each with the reason.
ALLOW_KOTLIN_ONLY = {
    # Android hands the certificate verifier the app's Context over JNI;
    # Apple's verifier needs nothing.
    "WaxwingAndroid.init",
    "test theAndroidEntryPointIsReachable",
    # Swift's ClientListener.onEvent cannot throw, so there is no throwing
    # listener to survive.
    "test aListenerThatThrowsDoesNotKillTheConnection",
}
ALLOW_SWIFT_ONLY = {
    # AsyncSequence's requirement on the events type; Kotlin's `events` is
    # a Flow, with nothing to implement.
    "WaxwingEvents.makeAsyncIterator",
}

TYPE_MAP = {"Waxwing": "WaxwingSession", "WaxwingAndroid": None, "WaxwingPush": "WaxwingPush", "WaxwingLog": "WaxwingLog"}


def params(text, open_paren):
    """Number of parameters in the list starting at text[open_paren] == '('."""
    depth, i, count, nonblank = 0, open_paren, 0, False
    while True:
        c = text[i]
        if c in "([<":
            depth += 1
        elif c in ")]>":
            depth -= 1
            if depth == 0:
                return count + (1 if nonblank else 0)
        elif c == "," and depth == 1:
            count += 1
            nonblank = False
        elif depth >= 1 and not c.isspace():
            nonblank = True
        i += 1


def scopes(text, pattern):
    """Splits text into (type name, body) at each top-level type declaration."""
    marks = [(m.start(), m.group(1)) for m in re.finditer(pattern, text, re.M)]
    return [(name, text[start:(marks[i + 1][0] if i + 1 < len(marks) else len(text))])
            for i, (start, name) in enumerate(marks)]


def kotlin_api():
    text = "\n".join(p.read_text() for p in KOTLIN)
    api = {}
    for typ, body in scopes(text, r"^(?:class|object) (\w+)"):
        # Members of the type (4 spaces) and of its companion (8), not of
        # objects nested deeper (the listener inside `open`).
        for m in re.finditer(r"^(?: {4}| {8})(?:override |suspend )*fun (\w+)\(", body, re.M):
            api[f"{typ}.{m.group(1)}"] = params(body, m.end() - 1)
        for m in re.finditer(r"^(?: {4}| {8})(?:override )?val (\w+)\s*:", body, re.M):
            api[f"{typ}.{m.group(1)}"] = None
    return {k: v for k, v in api.items() if k.split(".")[0] in TYPE_MAP}


def swift_api():
    text = "\n".join(p.read_text() for p in SWIFT)
    api = {}
    for typ, body in scopes(text, r"^public (?:final )?(?:class|enum|struct) (\w+)"):
        for m in re.finditer(r"^[ \t]*public (?:static )?func (\w+)\(", body, re.M):
            api[f"{typ}.{m.group(1)}"] = params(body, m.end() - 1)
        for m in re.finditer(r"^[ \t]*public init\(", body, re.M):
            api[f"{typ}.init"] = params(body, m.end() - 1)
        for m in re.finditer(r"^[ \t]*public (?:let|var) (\w+)\s*:", body, re.M):
            api[f"{typ}.{m.group(1)}"] = None
    return api


def kotlin_tests():
    return {f"test {m.group(1)}" for m in re.finditer(r"@Test\s+fun (\w+)\(", KOTLIN_TESTS.read_text())}


def swift_tests():
    text = "\n".join(p.read_text() for p in SWIFT_TESTS)
    return {f"test {m.group(1)[0].lower()}{m.group(1)[1:]}"
            for m in re.finditer(r"^[ \t]*func test(\w+)\(", text, re.M)}


def to_swift(name):
    if name in NAME_MAP:
        return NAME_MAP[name]
    typ, member = name.split(".")
    return f"{TYPE_MAP[typ]}.{member}"


def main():
    kt, sw = kotlin_api(), swift_api()
    passed, problems = 0, []
    matched_swift = set()
    for name, count in sorted(kt.items()):
        if name in ALLOW_KOTLIN_ONLY:
            print(f"allowed  {name} (Kotlin only)")
            continue
        target = to_swift(name)
        if target not in sw:
            problems.append(f"Swift lacks {target} (Kotlin {name})")
        elif count is not None and sw[target] is not None and count != sw[target]:
            problems.append(f"{name} takes {count} parameters in Kotlin, {sw[target]} in Swift ({target})")
        else:
            passed += 1
            matched_swift.add(target)
            print(f"ok       {name} = {target}")
    for name in sorted(set(sw) - matched_swift):
        if name in ALLOW_SWIFT_ONLY:
            print(f"allowed  {name} (Swift only)")
        else:
            problems.append(f"Kotlin lacks a counterpart of Swift {name}")
    kt_tests, sw_tests = kotlin_tests(), swift_tests()
    for name in sorted(kt_tests | sw_tests):
        if name in kt_tests and name in sw_tests:
            passed += 1
            print(f"ok       {name}")
        elif name in ALLOW_KOTLIN_ONLY or name in ALLOW_SWIFT_ONLY:
            print(f"allowed  {name} ({'Kotlin' if name in kt_tests else 'Swift'} only)")
        else:
            side = "Swift" if name in kt_tests else "Kotlin"
            problems.append(f"{side} tests lack the scenario {name}")
    for p in problems:
        print(f"MISSING  {p}")
    print(f"parity: {passed} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
