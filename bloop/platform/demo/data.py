"""What the demo tenant holds. Each service seeds its own part of it on first start."""

from __future__ import annotations

from dataclasses import dataclass

TENANT_ID = "demo"
TENANT_NAME = "Bloop Demo School"
SIGNUP_DOMAIN = "demo.bloop.dev"


@dataclass(frozen=True)
class Person:
    email: str
    display_name: str
    roles: tuple[str, ...]
    password: str


# Demo accounts on a demo tenant: these passwords are public on purpose.
PEOPLE = (
    Person("ada@demo.bloop.dev", "Ada", ("educator",), "ada loves the analytical engine"),
    Person("grace@demo.bloop.dev", "Grace", ("learner",), "grace found the first bug"),
)


@dataclass(frozen=True)
class DemoConcept:
    id: str
    name: str
    description: str


CONCEPTS = (
    DemoConcept("variables", "Variables", "Names bound to values by assignment."),
    DemoConcept("expressions", "Expressions", "Code that evaluates to a value."),
    DemoConcept("functions", "Functions", "Named, reusable computations with parameters."),
    DemoConcept("recursion", "Recursion", "Functions defined in terms of themselves."),
)


@dataclass(frozen=True)
class DemoLesson:
    title: str
    estimated_minutes: int
    teaches: tuple[str, ...]
    requires: tuple[str, ...]
    blocks: tuple[str, ...]


COURSE_ID = "thinking-in-python"
COURSE_TITLE = "Thinking in Python"
COURSE_SUMMARY = ("A short first course in programming with Python: names and values, "
                  "expressions, functions, and recursion.")
COURSE_TAGS = ("python", "programming", "foundations")

LESSONS = (
    DemoLesson(
        title="Names and values",
        estimated_minutes=10,
        teaches=("variables",),
        requires=(),
        blocks=(
            """\
In Python, a *variable* is a name that refers to a value. An assignment statement binds the
name on its left to the value that the expression on its right evaluates to:

```python
greeting = "hello"
count = 3
count = count + 1
print(greeting, count)  # hello 4
```

Assignment is not an equation. `count = count + 1` reads the current value of `count`, adds
one, and then rebinds `count` to the result.""",
            """\
A name does not hold a copy of a value: it refers to an object, and two names can refer to the
same object.

```python
a = [1, 2]
b = a
b.append(3)
print(a)  # [1, 2, 3]
```

Because `a` and `b` refer to the same list, a change made through one is visible through the
other. Rebinding a name, as in `b = [9]`, never changes what another name refers to.""",
        ),
    ),
    DemoLesson(
        title="Expressions and evaluation",
        estimated_minutes=12,
        teaches=("expressions",),
        requires=("variables",),
        blocks=(
            """\
An *expression* is code that Python evaluates to a value: `2 + 3`, `len("bloop")`,
`count * 2 > 10`. Statements such as assignment contain expressions, but are not values
themselves.

Operators bind by precedence: `**` before `*`, `/`, `//` and `%`, those before `+` and `-`,
arithmetic before comparisons, and `not` before `and` before `or`. Parentheses make the order
explicit:

```python
print(2 + 3 * 4)      # 14
print((2 + 3) * 4)    # 20
print(7 // 2, 7 % 2)  # 3 1
print(2 ** 3 ** 2)    # 512, because ** groups from the right
```""",
            """\
Boolean operators short-circuit: `and` stops at the first false operand and `or` at the first
true one. The result is the last operand evaluated, which is not necessarily `True` or `False`:

```python
name = ""
print(name or "anonymous")  # anonymous
print(0 and 1 / 0)          # 0, and 1 / 0 is never evaluated
```""",
        ),
    ),
    DemoLesson(
        title="Functions",
        estimated_minutes=15,
        teaches=("functions",),
        requires=("variables", "expressions"),
        blocks=(
            """\
A *function* gives a name to a computation so that you can reuse it. `def` creates one, and
`return` sends a value back to the caller:

```python
def area(width, height=1):
    \"\"\"The area of a width by height rectangle.\"\"\"
    return width * height

print(area(3, 4))               # 12
print(area(5))                  # 5
print(area(height=2, width=3))  # 6
```

Parameters are local names: each call binds them to its arguments, and they disappear when the
call ends. A function that ends without a `return` statement returns `None`.""",
            """\
Functions are values too, so you can pass one to another function:

```python
words = ["kiwi", "fig", "banana"]
print(sorted(words, key=len))  # ['fig', 'kiwi', 'banana']
```

Here `sorted` calls `len` on each word and orders the words by the results.""",
        ),
    ),
    DemoLesson(
        title="Recursion",
        estimated_minutes=15,
        teaches=("recursion",),
        requires=("functions", "expressions"),
        blocks=(
            """\
A function is *recursive* when it calls itself. A recursive definition needs a *base case*
that it answers directly, and a *recursive case* that moves towards the base case:

```python
def factorial(n):
    if n == 0:                    # base case
        return 1
    return n * factorial(n - 1)   # recursive case

print(factorial(5))  # 120
```

Each call has its own local `n`, so `factorial(5)` waits for `factorial(4)`, which waits for
`factorial(3)`, down to `factorial(0)`. Then the results multiply back up: 1, 1, 2, 6, 24, 120.""",
            """\
Recursion suits data that is itself recursive, such as lists nested in lists:

```python
def total(items):
    return sum(total(x) if isinstance(x, list) else x for x in items)

print(total([1, [2, 3], [[4]]]))  # 10
```

Python limits how deeply calls can nest (see `sys.getrecursionlimit()`, 1000 by default), so
for a very long chain of steps a loop is the better tool.""",
        ),
    ),
)
