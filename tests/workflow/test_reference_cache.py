"""The on-disk memory of best references (workflow plans and the command line): an answer
is reused only for the same header, reftypes and overrides, and only while the files it
names are still there."""

from webbflow import planning


class _Asker:
    """Stands in for CRDS: counts the questions, answers with ``answer``."""

    def __init__(self, answer):
        self.answer = answer
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return dict(self.answer)


def _files(tmp_path, *names):
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    return {name.split("_")[0]: str(tmp_path / name) for name in names}


META = {"instrument": {"name": "NIRCAM", "detector": "NRCA1"}, "exposure": {"type": "NRC_IMAGE"}}


def test_same_question_asked_once_and_kept_on_disk(tmp_path):
    refs = _files(tmp_path, "gain_1.fits", "dark_1.fits")
    ask = _Asker(refs)
    cache = planning.ReferenceCache(tmp_path, "jwst_0001.pmap")
    assert cache.lookup(META, ["gain", "dark"], ask) == refs
    assert cache.lookup(META, ["dark", "gain"], ask) == refs
    assert ask.calls == 1
    cache.save()
    again = planning.ReferenceCache(tmp_path, "jwst_0001.pmap")
    assert again.lookup(META, ["gain", "dark"], ask) == refs
    assert ask.calls == 1
    # another context is another question
    assert planning.ReferenceCache(tmp_path, "jwst_0002.pmap").lookup(META, ["gain"], ask)
    assert ask.calls == 2


def test_new_header_reftypes_or_overrides_ask_again(tmp_path):
    refs = _files(tmp_path, "gain_1.fits", "dark_1.fits")
    ask = _Asker(refs)
    cache = planning.ReferenceCache(tmp_path, "jwst_0001.pmap")
    cache.lookup(META, ["gain", "dark"], ask)
    other = {**META, "exposure": {"type": "NRC_TSIMAGE"}}
    cache.lookup(other, ["gain", "dark"], ask)
    assert ask.calls == 2
    cache.lookup(META, ["gain"], ask)
    assert ask.calls == 3
    # an override added to the config after the first run must take effect
    cache.lookup(META, ["gain", "dark"], ask, overrides={"dark": "N/A"})
    assert ask.calls == 4
    cache.lookup(META, ["gain", "dark"], ask, overrides={"dark": "N/A"})
    assert ask.calls == 4


def test_answer_naming_a_vanished_file_is_asked_again(tmp_path):
    refs = _files(tmp_path, "gain_1.fits")
    refs["persat"] = "N/A"
    ask = _Asker(refs)
    cache = planning.ReferenceCache(tmp_path, "jwst_0001.pmap")
    cache.lookup(META, ["gain", "persat"], ask)
    cache.lookup(META, ["gain", "persat"], ask)
    assert ask.calls == 1
    (tmp_path / "gain_1.fits").unlink()
    cache.lookup(META, ["gain", "persat"], ask)
    assert ask.calls == 2


def test_failed_question_is_not_remembered(tmp_path):
    cache = planning.ReferenceCache(tmp_path, "jwst_0001.pmap")

    def refuse():
        raise RuntimeError("no rule")

    for _ in range(2):
        try:
            cache.lookup(META, ["gain"], refuse)
        except RuntimeError:
            pass
    assert not cache.entries
    cache.save()
    assert not cache.path.exists()
