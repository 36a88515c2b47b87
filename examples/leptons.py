"""Leptons: shell commands (and library functions) as steps of a workflow.

- `word_count` is a bash lepton: its `{text}` placeholder is filled from its argument,
  and it returns the command's stdout (without the trailing newline).
- `machine` is a function that returns a command; its `named_outputs` are shell
  variables the command sets, returned as a tuple and unpacked in the lattice.
- `mean` is a python lepton: `statistics.mean`, looked up on the executor.
- `report` is an ordinary electron that puts the three together.

The second dispatch runs a command that exits with status 3: its node fails with the
command's stderr, as any failing electron does.

Run it with `python examples/leptons.py`. See docs/leptons.md.
"""

import covalent as ct

word_count = ct.Lepton(language="bash", command="echo {text} | wc -w", display_name="word_count")


@ct.leptons.bash(named_outputs=["KERNEL", "CORES"])
def machine():
    return 'KERNEL=$(uname -s); CORES=$(nproc); echo "asked $(hostname)"'


mean = ct.Lepton(language="python", library_name="statistics", function_name="mean")


@ct.electron
def report(words, kernel, cores, average):
    return f"{words} words; {kernel} with {cores} cores; mean {average}"


@ct.lattice
def workflow(text, numbers):
    kernel, cores = machine()
    return report(word_count(text=text), kernel, cores, mean(numbers))


failing = ct.leptons.bash("echo checking; echo 'disk quota exceeded' >&2; exit 3")


@ct.lattice
def broken():
    return failing()


if __name__ == "__main__":
    dispatch_id = ct.dispatch(workflow)(text="electrons leptons and lattices", numbers=[1, 2, 6])
    print(f"dispatch id: {dispatch_id}")
    result = ct.get_result(dispatch_id, wait=True)
    print(result)
    machine_node = next(n for n in result.get_all_node_results() if n["node_name"] == "machine")
    print(f"machine's stdout: {machine_node['stdout']!r}")
    if result.status != ct.status.COMPLETED:
        raise SystemExit(1)

    failed = ct.dispatch_sync(broken)()
    print(f"broken: {failed.status}")
    print("\n".join(failed.get_node_result(0)["error"].strip().splitlines()[-2:]))
