"""The man page, made from the CLI itself (its commands, usage lines, help texts and
options), so that it says what ``--help`` says.  ``man/lxcvirt.1`` in the source tree is
its output (``python -m lxcvirt._man > man/lxcvirt.1``); a test keeps the two the same.
"""

from __future__ import annotations

import click


def _roff(text: str) -> str:
    """Text as roff: backslashes escaped, no line taken for a request."""
    lines = []
    for line in text.replace("\\", "\\e").splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def _help_text(cmd: click.Command) -> str:
    """Its help, paragraph by paragraph; a paragraph click keeps as it is (``\\b``) keeps
    its lines in roff too."""
    paras = []
    for para in (cmd.help or "").strip().split("\n\n"):
        if para.startswith("\b"):
            paras.append(".nf\n" + _roff(para[1:].strip("\n")) + "\n.fi")
        else:
            paras.append(_roff(" ".join(para.split())))
    return "\n.PP\n".join(p for p in paras if p)


def _options(cmd: click.Command, ctx: click.Context) -> list[str]:
    out = []
    for param in cmd.get_params(ctx):
        # The help option is written once, the same everywhere: click builds it per
        # context (and caches it), so its names would depend on what ran before.
        if not isinstance(param, click.Option) or "--help" in param.opts:
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        opts, text = record
        out.append(".TP\n\\fB" + _roff(opts).replace("-", "\\-") + "\\fR\n" + _roff(text))
    out.append(".TP\n\\fB\\-h, \\-\\-help\\fR\nShow this message and exit.")
    return out


def _command(cmd: click.Command, ctx: click.Context, path: str) -> list[str]:
    sub = click.Context(cmd, info_name=path.split()[-1], parent=ctx)
    usage = " ".join(cmd.collect_usage_pieces(sub))
    out = [f'.SS "{_roff(path)} {_roff(usage)}"', _help_text(cmd), *_options(cmd, sub)]
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(sub):
            child = cmd.get_command(sub, name)
            if child is not None and not child.hidden:
                out += _command(child, sub, f"{path} {name}")
    return out


def render_man() -> str:
    """The whole man page, as roff."""
    from . import __version__
    from .cli import cli

    ctx = click.Context(cli, info_name="lxcvirt")
    parts = [
        f'.TH LXCVIRT 1 "" "lxcvirt {__version__}" "User Commands"',
        ".SH NAME",
        "lxcvirt \\- Linux containers through libvirt's LXC driver",
        ".SH SYNOPSIS",
        ".B lxcvirt",
        "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        _roff("A front end to libvirt's LXC driver: specs to domain XML, validation, the "
              "lifecycle of containers, autostart, host checks, a console, and declarative "
              "provisioning of one host or a fleet. Every command takes --help; "
              "`lxcvirt help COMMAND` says the same."),
        ".SH OPTIONS",
        *_options(cli, ctx),
        ".SH COMMANDS",
    ]
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        if cmd is not None and not cmd.hidden:
            parts += _command(cmd, ctx, f"lxcvirt {name}")
    parts += [
        ".SH EXIT STATUS",
        "0: done; 1: an error (nothing, or that one thing, was done); 2: partly done "
        "(some containers or hosts failed, the others were done).",
        ".SH SEE ALSO",
        "virsh(1), lxc-start(1), README.md of lxcvirt",
    ]
    return "\n".join(p for p in parts if p) + "\n"


if __name__ == "__main__":
    click.echo(render_man(), nl=False)
