"""pyctr completion bash|zsh: a completion script generated from pyctr's own argument tree."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator

ROOT = "pyctr"

_BASH_FUNCTION = """\
_pyctr() {
    local cur word path i
    cur="${COMP_WORDS[COMP_CWORD]}"
    path="pyctr"
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        [[ "$word" == -* ]] && continue
        [[ -n "${_pyctr_words["$path $word"]+set}" ]] && path="$path $word"
    done
    COMPREPLY=($(compgen -W "${_pyctr_words[$path]}" -- "$cur"))
}
complete -o default -F _pyctr pyctr
"""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # noqa: SLF001 - argparse offers no public walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


def command_words(
    parser: argparse.ArgumentParser, path: str = ROOT
) -> Iterator[tuple[str, list[str]]]:
    """(command path, words that may follow it) for every command, depth first."""
    children = _subparsers(parser)
    options = [o for a in parser._actions for o in a.option_strings]  # noqa: SLF001
    yield path, sorted(children) + sorted(options)
    for name, child in children.items():
        yield from command_words(child, f"{path} {name}")


def bash_script(parser: argparse.ArgumentParser) -> str:
    entries = "\n".join(
        f"    [{shlex.quote(path)}]={shlex.quote(' '.join(words))}"
        for path, words in command_words(parser)
    )
    return (
        f'# pyctr completion for bash: eval "$(pyctr completion bash)"\n'
        f"declare -gA _pyctr_words=(\n{entries}\n)\n{_BASH_FUNCTION}"
    )


def zsh_script(parser: argparse.ArgumentParser) -> str:
    return (
        '# pyctr completion for zsh: eval "$(pyctr completion zsh)"\n'
        "autoload -U +X bashcompinit && bashcompinit\n" + bash_script(parser)
    )


def completion(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    print(bash_script(parser) if args.shell == "bash" else zsh_script(parser), end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser(
        "completion",
        help="print a shell completion script",
        description='Enable with: eval "$(pyctr completion bash)" (or zsh).',
    )
    cmd.add_argument("shell", choices=("bash", "zsh"))
    cmd.set_defaults(offline_handler=completion)
