"""The class tree: from the names (NDSB's ``_`` prefixes) or a taxonomy file (validated, errors naming the line),
counts summed over children; the route that serves it; ``app init --taxonomy``."""

from __future__ import annotations

import pytest

from diffprobe.app.taxonomy import class_tree, name_parents, parse_taxonomy, read_taxonomy, taxonomy_csv
from diffprobe.utils import DiffprobeError

NDSB = ["copepod_calanoid", "copepod_calanoid_eucalanus", "copepod_calanoid_large", "copepod_cyclopoid_oithona",
        "copepod_cyclopoid_oithona_eggs", "copepod_other", "fish_larvae_thin_body", "fish_larvae_very_thin_body",
        "chaetognath_sagitta", "protist_star", "protist_other", "artifacts"]


def counts(names, validated=None):
    return [{"name": n, "predicted": k + 1, "validated": (validated or {}).get(n, 0), "dubious": 0, "total": k + 1,
             "source": "model"} for k, n in enumerate(names)]


def shape(nodes):
    """label -> (class?, total, children's shape), or label -> total for a leaf."""
    return {n["label"]: (n["class"], n["total"], shape(n["children"])) if n["children"] else n["total"] for n in nodes}


def test_tree_from_ndsb_names():
    tree = class_tree(counts(NDSB, {"copepod_calanoid_large": 2, "copepod_other": 1}))
    assert tree["source"] == "names" and tree["unplaced"] == []
    assert shape(tree["nodes"]) == {
        "copepod": (False, 1 + 2 + 3 + 4 + 5 + 6, {
            "calanoid": (True, 1 + 2 + 3, {"eucalanus": 2, "large": 3}),  # a class that is a group too
            "cyclopoid_oithona": (True, 4 + 5, {"eggs": 5}),  # cyclopoid > oithona: one group of one group
            "other": 6}),
        "fish_larvae": (False, 7 + 8, {"thin_body": 7, "very_thin_body": 8}),  # fish > larvae, one group
        "chaetognath_sagitta": 9,  # no prefix shared: a leaf with its whole name
        "protist": (False, 10 + 11, {"star": 10, "other": 11}),
        "artifacts": 12}
    copepod = tree["nodes"][0]
    assert copepod["name"] == "copepod" and copepod["validated"] == 3
    assert [c["name"] for c in copepod["children"]] == ["copepod_calanoid", "copepod_cyclopoid_oithona",
                                                        "copepod_other"]  # the classes' order


def test_name_parents_and_flat_names():
    assert name_parents(["a_b", "a_c", "d"]) == {"a_b": "a", "a_c": "a", "d": None, "a": None}
    assert shape(class_tree(counts(["one", "two_x"]))["nodes"]) == {"one": 1, "two_x": 2}
    assert class_tree([])["nodes"] == []


def test_tree_from_a_taxonomy():
    taxonomy = parse_taxonomy("name,parent\nCrustacea,\nCopepoda,Crustacea\nCalanoida,Copepoda\nOithona,Copepoda\n"
                              "Protista,\nNoctiluca,Protista\nMollusca,\n")
    tree = class_tree(counts(["Calanoida", "Oithona", "Noctiluca", "detritus"]), taxonomy)
    assert tree["source"] == "taxonomy" and tree["unplaced"] == ["detritus"]
    # Crustacea > Copepoda: a group of one group is left out; Protista (one class) likewise; Mollusca holds none.
    assert shape(tree["nodes"]) == {"Copepoda": (False, 3, {"Calanoida": 1, "Oithona": 2}), "Noctiluca": 3,
                                    "detritus": 4}


def test_taxonomy_file_tsv_extra_columns_and_round_trip(tmp_path):
    path = tmp_path / "taxa.tsv"
    path.write_text("# exported\nid\tname\tparent\n1\tCopepoda\t\n2\tcopepod_calanoid\tCopepoda\n")
    parents = read_taxonomy(path)
    assert parents == {"Copepoda": None, "copepod_calanoid": "Copepoda"}
    assert parse_taxonomy(taxonomy_csv(parents)) == parents
    quoted = parse_taxonomy('name,parent\n"Copepoda, other",\nx,"Copepoda, other"\n')
    assert quoted == {"Copepoda, other": None, "x": "Copepoda, other"}


@pytest.mark.parametrize(("text", "message"), [
    ("", "the taxonomy file is empty"),
    ("taxon,up\na,\n", "t.csv:1: the first row must name the columns 'name' and 'parent'"),
    ("name,parent\na\n", "t.csv:2: 1 column, the header names 2"),
    ("name,parent\na,\nb,a\na,b\n", "t.csv:4: 'a' is already a taxon of line 2"),
    ("name,parent\na,a\n", "t.csv:2: 'a' cannot be its own parent"),
    ("name,parent\na,\nb,c\n", "t.csv:3: the parent 'c' of 'b' is not a taxon of the file"),
    ("name,parent\na,c\nb,a\nc,b\n", "t.csv:2: 'a' is its own ancestor (a > b > c > a)"),
    ("name,parent\n\"a\tb\",\n", "t.csv:2: a class name cannot hold control characters"),
    ("name,parent\n" + "x" * 300 + ",\n", "t.csv:2: a class name has at most 200 characters"),
])
def test_taxonomy_errors_name_the_file_and_the_line(tmp_path, text, message):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DiffprobeError) as e:
        read_taxonomy(path)
    assert message in str(e.value) and str(path) in str(e.value)


def test_unreadable_taxonomy_file(tmp_path):
    with pytest.raises(DiffprobeError, match="cannot read the taxonomy file"):
        read_taxonomy(tmp_path / "missing.csv")
    (tmp_path / "bin.csv").write_bytes(b"name,parent\n\xff\xfe,\n")
    with pytest.raises(DiffprobeError, match="bin.csv: cannot read"):
        read_taxonomy(tmp_path / "bin.csv")


def test_the_route_serves_the_tree_from_the_names_then_from_a_taxonomy(client, project_dir, tmp_path, capsys):
    from diffprobe.cli import main

    total = {c["name"]: c["total"] for c in client.get("/api/project").json()["classes"]}  # the model's predictions
    tree = client.get("/api/classes/tree").json()
    assert tree["source"] == "names"
    spiny = next(n for n in tree["nodes"] if n["name"] == "spiny")  # the synthetic classes: family_variant
    assert not spiny["class"] and sorted(c["label"] for c in spiny["children"]) == ["long", "short"]
    assert spiny["total"] == total["spiny_short"] + total["spiny_long"]
    ids = [o["id"] for o in client.get("/api/objects", params={"label": "spiny_long"}).json()["objects"][:3]]
    client.post("/api/decisions", json={"ids": ids, "action": "validate"}).raise_for_status()
    assert next(n for n in client.get("/api/classes/tree").json()["nodes"] if n["name"] == "spiny")["validated"] == 3

    bad = tmp_path / "bad.csv"
    bad.write_text("name,parent\nspiny_short,spines\n")
    assert main(["app", "taxonomy", str(project_dir), str(bad)]) != 0
    assert "bad.csv:2: the parent 'spines' of 'spiny_short' is not a taxon of the file" in capsys.readouterr().err
    taxa = tmp_path / "taxa.csv"
    taxa.write_text("name,parent\nliving,\nspines,living\nspiny_short,spines\nspiny_long,spines\n"
                    "chains,living\nchain_three,chains\nchain_five,chains\n")
    assert main(["app", "taxonomy", str(project_dir), str(taxa)]) == 0
    assert "taxonomy of 7 taxa" in capsys.readouterr().out
    tree = client.get("/api/classes/tree").json()
    assert tree["source"] == "taxonomy" and len(tree["unplaced"]) == 4
    living = next(n for n in tree["nodes"] if n["name"] == "living")
    assert sorted(c["name"] for c in living["children"]) == ["chains", "spines"]
    assert living["total"] == sum(total[c] for c in ("spiny_short", "spiny_long", "chain_three", "chain_five"))
    assert living["validated"] == 3


def test_init_refuses_a_bad_taxonomy_first_and_keeps_a_good_one(app_bundle, tmp_path, capsys):
    from diffprobe.app.project import Project
    from diffprobe.cli import main

    bad = tmp_path / "bad.tsv"
    bad.write_text("name\tparent\nspiny_long\tspiny_long\n")
    assert main(["app", "init", str(tmp_path / "p"), "--images", str(app_bundle["data"] / "spiny_long"), "--model",
                 str(app_bundle["bundle"]), "--taxonomy", str(bad)]) != 0
    assert "bad.tsv:2: 'spiny_long' cannot be its own parent" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()  # refused before any feature was computed
    good = tmp_path / "good.tsv"
    good.write_text("name\tparent\nspines\t\nspiny_long\tspines\n")
    assert main(["app", "init", str(tmp_path / "p"), "--images", str(app_bundle["data"] / "spiny_long"), "--model",
                 str(app_bundle["bundle"]), "--precision", "fp32", "--taxonomy", str(good)]) == 0
    project = Project.open(tmp_path / "p")
    assert project.taxonomy() == {"spines": None, "spiny_long": "spines"}
    project.close()
