"""The `osflow-sniff` command line: its options, checked and handed to a run (see `run`)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

import click

from . import __version__
from .correlate import MAX_WAIT
from .filters import IgnoreFileError, Selection, load_ignore
from .outputs import OUTPUTS, Chosen, Style, directory_files
from .pipeline import Options
from .render.markdown import TITLE
from .run import Failure, Live, Run, default_jobs, run_live, run_offline
from .services import ServiceMap, ServicesFileError

SIZE = re.compile(r"(\d+)\s*([kmg]i?b?)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`1048576`, `512K`, `1M`, `1MiB` -> bytes."""
    found = SIZE.fullmatch(text.strip())
    if not found:
        raise click.BadParameter(f"not a size: {text!r} (e.g. 65536, 512K, 1M)")
    unit = (found.group(2) or "")[:1].lower()
    return int(found.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]


def selection(
    ignore_file: str | None,
    only: tuple[str, ...],
    exclude: tuple[str, ...],
    paths: tuple[str, ...],
) -> Selection:
    try:
        rules = load_ignore(ignore_file) if ignore_file else []
        patterns = tuple(re.compile(path) for path in paths)
    except IgnoreFileError as error:
        raise click.ClickException(str(error)) from None
    except re.error as error:
        raise click.BadParameter(f"--exclude-path: {error}") from None
    return Selection(rules, frozenset(only), frozenset(exclude), patterns)


def parse_offsets(texts: tuple[str, ...], files: tuple[str, ...]) -> dict[str, float]:
    """`FILE=SECONDS` for captures given with -r."""
    offsets = {}
    for text in texts:
        path, _, seconds = text.rpartition("=")
        if path not in files:
            raise click.BadParameter(f"{text!r}: FILE must be one of the -r captures")
        try:
            offsets[path] = float(seconds)
        except ValueError:
            raise click.BadParameter(f"{text!r}: SECONDS must be a number") from None
    return offsets


def output_options(command: Callable) -> Callable:
    """An option for each output that can be written to a file of its own."""
    for output in reversed(OUTPUTS):
        if output.help is None:
            continue
        also = f" ({output.files[0]} is always written with -o)" if output.files else ""
        option = click.option(
            f"--{output.name}",
            _parameter(output.name),
            metavar=output.metavar,
            help=f"{output.help}{also}.",
        )
        command = option(command)
    return command


def _parameter(name: str) -> str:
    return name.replace("-", "_") + "_file"


def _given(output_files: dict[str, str | None]) -> dict[str, str]:
    """Output name -> the file (or URL) its option gave."""
    return {
        output.name: given
        for output in OUTPUTS
        if (given := output_files.get(_parameter(output.name)))
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-r",
    "--read",
    "files",
    multiple=True,
    metavar="FILE",
    help="Read a pcap/pcapng capture (repeat to merge several in time order).",
)
@click.option(
    "-i",
    "--interface",
    metavar="IFACE",
    help="Capture live on an interface (lo, eth0, any); needs root or CAP_NET_RAW.",
)
@click.option(
    "-o",
    "--output",
    metavar="DIR",
    help=f"Write {', '.join(directory_files()[:-1])} and {directory_files()[-1]} into DIR.",
)
@click.option(
    "-w",
    "--write",
    "write_file",
    metavar="FILE",
    help="Live: also save the captured packets as a pcap (raw, secrets included).",
)
@click.option("-c", "--count", type=click.IntRange(1), help="Live: stop after N calls.")
@click.option(
    "--duration",
    type=click.FloatRange(0, min_open=True),
    metavar="S",
    help="Live: stop after S seconds.",
)
@click.option(
    "--no-ebpf",
    is_flag=True,
    help="Live: name the processes behind connections from /proc only, without loading the "
    "eBPF program that reports who opens each one, nor reading TLS connections' plaintext.",
)
@click.option(
    "--tls-library",
    "tls_libraries",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    metavar="PATH",
    help="Live: read TLS plaintext from this libssl (repeatable; default: those `ldconfig -p` "
    "lists). In a container, the host's, e.g. /host/usr/lib/x86_64-linux-gnu/libssl.so.3 "
    "with -v /:/host:ro.",
)
@click.option(
    "-B",
    "--buffer-size",
    "buffer_mib",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    metavar="MiB",
    help="Live: kernel receive buffer.",
)
@click.option(
    "--max-body",
    default="1M",
    show_default=True,
    metavar="SIZE",
    help="Keep at most SIZE bytes of each body for display (framing is followed to the end "
    "regardless).",
)
@click.option(
    "--max-wait",
    type=click.FloatRange(0, min_open=True),
    default=MAX_WAIT,
    show_default=True,
    metavar="S",
    help="Number a call still unanswered after S seconds (capture time) without waiting for "
    "its response, so that the calls after it are not held back.",
)
@click.option(
    "--services",
    "services_file",
    metavar="FILE",
    help="TOML file naming services by port, address or path prefix.",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "ko"]),
    default="en",
    show_default=True,
    help="Language of the document labels.",
)
@click.option(
    "--show-secrets",
    is_flag=True,
    help="Write tokens and passwords as captured (by default they are masked in every output).",
)
@click.option(
    "--ignore",
    "ignore_file",
    metavar="FILE",
    help="Drop the calls matching the filters of a requestshook ignore file (JSON).",
)
@click.option(
    "--only-service",
    multiple=True,
    metavar="NAME",
    help="Show only the calls NAME makes or serves (repeatable).",
)
@click.option(
    "--exclude-service",
    multiple=True,
    metavar="NAME",
    help="Drop the calls NAME makes or serves, and theirs (repeatable).",
)
@click.option(
    "--exclude-path",
    multiple=True,
    metavar="REGEX",
    help="Drop the calls whose path matches REGEX, and theirs (repeatable).",
)
@click.option(
    "--clock-offset",
    "clock_offsets",
    multiple=True,
    metavar="FILE=SECONDS",
    help="Correct the clock of one -r capture (a host's clock was off by -SECONDS).",
)
@output_options
@click.option(
    "--mkdocs",
    "site",
    is_flag=True,
    help="With -o DIR: make DIR an mkdocs project (mkdocs.yml, the pages in DIR/docs) that "
    "`mkdocs build` and `mkdocs serve` take as it is.",
)
@click.option("--title", default=TITLE, show_default=True, help="The page's title.")
@click.option(
    "--split",
    type=click.Choice(["command", "none"]),
    default="command",
    show_default=True,
    help="With -o: a folder of pages per command and an index of them (one command: the "
    "pages straight into DIR), or every call in one page.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite files that osflow-sniff did not write (by default a run refuses to).",
)
@click.option(
    "--template-ids",
    is_flag=True,
    help="Show paths as their API templates in diagrams and headings (/v2/images/{image_id}).",
)
@click.option("-q", "--quiet", is_flag=True, help="Do not print the flow on the terminal.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 2),
    metavar="N",
    help="2 writes the outputs in a second process, on a second core; 1 does all in one "
    "[default: 2 where two CPUs are available, live or for captures of 16 MB or more]",
)
@click.argument("expression", nargs=-1)
@click.version_option(__version__, "-V", "--version")
def main(
    files: tuple[str, ...],
    interface: str | None,
    output: str | None,
    write_file: str | None,
    count: int | None,
    duration: float | None,
    no_ebpf: bool,
    tls_libraries: tuple[str, ...],
    buffer_mib: int,
    max_body: str,
    max_wait: float,
    services_file: str | None,
    lang: str,
    show_secrets: bool,
    quiet: bool,
    ignore_file: str | None,
    only_service: tuple[str, ...],
    exclude_service: tuple[str, ...],
    exclude_path: tuple[str, ...],
    clock_offsets: tuple[str, ...],
    template_ids: bool,
    site: bool,
    title: str,
    split: str,
    force: bool,
    jobs: int | None,
    expression: tuple[str, ...],
    **output_files: str | None,
) -> None:
    """Rebuild the call flow of OpenStack services from HTTP/1.1 traffic.

    \b
    osflow-sniff -r capture.pcap              the flow of a capture, one line per message
    osflow-sniff -r capture.pcap -o flow/     the documents, in flow/
    osflow-sniff -i lo -o flow/ port 80       live; Ctrl-C writes the documents

    EXPRESSION (live only) is a tcpdump filter, applied in the kernel.
    """
    if bool(files) == bool(interface):
        raise click.UsageError("give a capture with -r FILE, or an interface with -i IFACE")
    if files and (expression or write_file or count or duration):
        raise click.UsageError("a filter expression, -w, -c and --duration apply to -i only")
    if interface and clock_offsets:
        raise click.UsageError("--clock-offset applies to -r captures")
    try:
        options = Options(parse_size(max_body), ServiceMap.load(services_file), max_wait=max_wait)
        options.selection = selection(ignore_file, only_service, exclude_service, exclude_path)
        if site and not output:
            raise click.UsageError("--mkdocs needs -o DIR")
        style = Style(lang, template_ids, title)
        chosen = Chosen(output, _given(output_files), style, site, force, split == "command")
        run = Run(chosen, options, quiet, show_secrets)
        if files:
            run.jobs = jobs or default_jobs(files)
            code = run_offline(run, files, parse_offsets(clock_offsets, files))
        else:
            run.jobs = jobs or default_jobs(())
            chosen.live = True
            assert interface is not None  # (one of -r and -i: checked above)
            live = Live(interface, " ".join(expression) or None, buffer_mib << 20, write_file)
            live.calls, live.seconds, live.ebpf = count, duration, not no_ebpf
            live.tls_libraries = tls_libraries
            code = run_live(run, live)
    except (Failure, ServicesFileError, IgnoreFileError) as error:
        raise click.ClickException(str(error)) from None
    sys.exit(code)
