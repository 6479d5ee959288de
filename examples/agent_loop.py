#!/usr/bin/env python3
"""Run model-written code in a sandbox and feed the result back.

An agent loop as LLM frameworks run it: the model writes code, the sandbox
runs it, the output (or the traceback) goes back to the model, which tries
again. State persists between steps: a variable defined in one step is
there in the next (a code context), and files stay on the sandbox's disk.

The "model" here is a stand-in that answers from a script, so that the
example runs anywhere; replace `model()` with a call to your LLM.

    .venv/bin/python examples/agent_loop.py
"""
from airlock import Sandbox

TASK = "Find the three most common words in /home/sandbox/corpus.txt, with their counts."

# What a model might write, turn by turn: a first try with a bug, a fix
# after it reads the traceback, and a final answer once the code worked.
SCRIPTED_TURNS = [
    "text = open('/home/sandbox/corpus.txt').read()\n"
    "counts = Counter(text.split())\n"
    "counts.most_common(3)",
    "from collections import Counter\n"
    "counts = Counter(text.lower().split())\n"
    "counts.most_common(3)",
    "FINAL",
]


def model(transcript: list) -> str:
    """The next turn of the model, given what it saw so far."""
    return SCRIPTED_TURNS[sum(1 for role, _ in transcript if role == "model")]


def main() -> None:
    transcript = [("user", TASK)]
    with Sandbox.create(language="python", memory_mb=256, ttl=600) as sandbox:
        sandbox.files.write("/home/sandbox/corpus.txt", b"the cat and the dog and THE bird\n" * 3)
        for step in range(1, 6):
            code = model(transcript)
            transcript.append(("model", code))
            if code == "FINAL":
                break
            execution = sandbox.run_code(code, timeout=30)
            if execution.error:
                feedback = f"{execution.error.name}: {execution.error.value}\n" + "\n".join(execution.error.traceback)
                print(f"step {step}: the code failed with {execution.error.name}; feeding the traceback back")
            else:
                feedback = execution.text or execution.stdout
                print(f"step {step}: the code returned {feedback}")
            transcript.append(("sandbox", feedback))
    print("answer:", transcript[-2][1])


if __name__ == "__main__":
    main()
