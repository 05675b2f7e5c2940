"""The Markdown reports the commands write beside their JSON: plain results in, text out (no stage is
imported, so every stage may use them)."""

from __future__ import annotations

import math


def probe_report(r: dict, fit_seconds: float) -> str:
    b = r["best"]
    lines = [
        "# Linear probes over (block, timestep)", "",
        f"{r['n_classes']} classes; split sizes {r['split_sizes']}; {r['probe']['n_pairs']} pairs probed in "
        f"{fit_seconds:.1f} s.", "",
        f"**Best pair (chosen on val): {b['block']} at t={b['timestep']}**: test top-1 "
        f"{b['test_accuracy']:.2%}, macro F1 {b['test_macro_f1']:.3f}, balanced accuracy "
        f"{b['test_balanced_accuracy']:.2%} (val {b['val_accuracy']:.2%}). Chance (majority class): "
        f"{r['chance_accuracy']:.2%}.", "",
        f"Calibration: temperature {r['calibration']['temperature']:.3f} fitted on val; test ECE "
        f"{r['calibration']['test_ece_before']:.3f} -> {r['calibration']['test_ece_after']:.3f}.", "",
        "![heatmap](heatmap.png)", "",
        "| block | t | val acc | test acc | test macro F1 | test bal. acc |", "|---|---|---|---|---|---|",
    ]
    for g in r["grid"]:
        mark = " **(best)**" if (g["block"], g["timestep"]) == (b["block"], b["timestep"]) else ""
        lines.append(f"| {g['block']}{mark} | {g['timestep']} | {g['val_accuracy']:.2%} | {g['test_accuracy']:.2%} | "
                     f"{g['test_macro_f1']:.3f} | {g['test_balanced_accuracy']:.2%} |")
    lines += ["", "![confusion](confusion.png)", ""]
    return "\n".join(lines)


def fusion_report(r: dict) -> str:
    b, s = r["best"], r["best_single_pair"]
    pairs = ", ".join(f"{p['block']} t={p['timestep']}" for p in b["pairs"])
    what = f"{r.get('head', 'linear')} head" + (" with object metadata" if r.get("metadata") else "")
    lines = [f"# Fused features of the top pairs ({what})", "",
             f"**Chosen on val: k = {b['k']} pairs** ({pairs}; {b['dim']} dims): test top-1 {b['test_accuracy']:.2%}, "
             f"macro F1 {b['test_macro_f1']:.3f}, balanced accuracy {b['test_balanced_accuracy']:.2%}, log loss "
             f"{b['test_log_loss']:.3f} (val {b['val_accuracy']:.2%}). Best single pair ({s['block']} "
             f"t={s['timestep']}, linear): test top-1 {s['test_accuracy']:.2%}, macro F1 {s['test_macro_f1']:.3f}.", "",
             "| k | dims | val acc | val log loss | test acc | test macro F1 | test log loss |",
             "|---|---|---|---|---|---|---|"]
    for row in r["candidates"]:
        mark = " **(chosen)**" if row["k"] == b["k"] else ""
        lines.append(f"| {row['k']}{mark} | {row['dim']} | {row['val_accuracy']:.2%} | {row['val_log_loss']:.3f} | "
                     f"{row['test_accuracy']:.2%} | {row['test_macro_f1']:.3f} | {row['test_log_loss']:.3f} |")
    if "refit" in r:
        f = r["refit"]
        lines += ["", f"**Refit on {' + '.join(f['parts'])}** ({f['images']} images, stopped at epoch {f['epoch']} as "
                      f"val chose; the bundled head): test top-1 {f['test_accuracy']:.2%}, macro F1 "
                      f"{f['test_macro_f1']:.3f}, log loss {f['test_log_loss']:.3f}."]
    return "\n".join(lines + [""])


def evaluation_report(r: dict) -> str:
    """A short Markdown report that says what each number means."""
    c = r["calibration"]
    what = ("model classes matched to data classes by exact name" if r["mode"] == "class names"
            else f"classes grouped by the class map {r['class_map']}")
    lines = [
        f"# Evaluation of {r['bundle']} on {r['data']} ({r['part']})", "",
        f"Mode: {what}. **{r['n_images']} images evaluated**, {r['n_skipped']} skipped because their class is "
        f"not known to the model (or not in the map), {r['n_unreadable']} unreadable.", "",
        f"- **Accuracy {r['accuracy']:.2%}**: share of images whose top prediction is their true class "
        f"(always guessing the most common class would give {r['chance_accuracy']:.2%}).",
        f"- **Macro F1 {r['macro_f1']:.3f}**: the F1 score (harmonic mean of precision and recall) averaged over "
        f"classes with equal weight, so rare classes count as much as common ones.",
        f"- **Balanced accuracy {r['balanced_accuracy']:.2%}**: recall averaged over classes.",
        f"- **Calibration**: expected calibration error (ECE: average gap between the stated confidence and the "
        f"actual accuracy; 0 = confidences can be taken at face value) {c['ece_before']:.3f} with raw "
        f"probabilities, {c['ece_after']:.3f} after temperature scaling (T = {c['temperature']:.3f}, fitted on val).",
    ]
    if "flagged_unknown_share" in r:
        lines.append(f"- **Flagged unknown: {r['flagged_unknown_share']:.1%}** of the evaluated (known-class) "
                     f"images score below the unknown threshold; about 5% is expected on data like the training "
                     f"data, much more signals a distribution shift.")
    if r.get("shift_warning"):
        lines.append(f"- **Warning**: {r['shift_warning']}")
    if "openset" in r:
        o = r["openset"]
        lines.append(f"- **Unknown detection** ({o['n_unknown']} images of classes the model never saw vs "
                     f"{o['n_known']} known): AUROC {o['auroc_msp']:.3f} (max probability), "
                     f"{o['auroc_energy']:.3f} (energy); 0.5 = no better than chance, 1 = perfect."
                     + (f" At the bundle's threshold {o['known_accepted']:.1%} of known images are accepted and "
                        f"{o['unknown_rejected']:.1%} of unknown ones rejected." if "threshold" in o else ""))
    if "abundance" in r:
        a = r["abundance"]
        ps = a["prior_shift"]
        fmt = ", ".join(f"{k.upper()} {v:.3f}" for k, v in a["error"].items())
        fmt_shift = ", ".join(f"{k.upper()} {v:.3f}" for k, v in ps["mean_error"].items())
        lines += [f"- **Abundance error** (half the summed absolute difference between estimated and true class "
                  f"shares: the share of the sample attributed to the wrong class; 0 = perfect): {fmt} on this data; "
                  f"mean over {ps['n_trials']} synthetic samples of {ps['sample_size']} images with random class "
                  f"proportions: {fmt_shift}. CC counts predictions, ACC corrects them with the val confusion "
                  f"matrix, EM re-estimates the class priors from calibrated probabilities. The corrections need a "
                  f"reliable val confusion matrix and calibration (enough val images per class); use the one with "
                  f"the lowest error here."]
    if r["skipped_by_class"]:
        lines += ["", "Skipped classes (images): " + ", ".join(f"{k} ({v})" for k, v in r["skipped_by_class"].items())]
    lines += ["", "| class | images | predicted | precision | recall | F1 |", "|---|---|---|---|---|---|"]
    for name, p in r["per_class"].items():
        lines.append(f"| {name} | {p['n']} | {p['n_predicted']} | {p['precision']:.3f} | {p['recall']:.3f} | "
                     f"{p['f1']:.3f} |")
    lines += ["", "![confusion](confusion.png)", ""]
    return "\n".join(lines)


def zeroshot_report(r: dict) -> str:
    rep = r["representation"]
    lines = ["# Zero-shot classification (no classifier trained on labels)", "",
             f"Model `{r['model']}` ({r['backbone']}), representation **{rep['block']} at t={rep['timestep']}** "
             f"({r['dim']} dims). {r['n_classes']} classes; references from the train part ({r['n_train_references']} "
             f"images), evaluated on {r['n_test']} test images. Chance (majority class): {r['chance_accuracy']:.2%}.",
             "", "| method | accuracy | macro F1 | balanced acc. |", "|---|---|---|---|"]

    def row(name: str, m: dict) -> str:
        sd = f" ± {m['accuracy_std']:.2%}" if m.get("episodes", 1) > 1 else ""
        return f"| {name} | {m['accuracy']:.2%}{sd} | {m['macro_f1']:.3f} | {m['balanced_accuracy']:.2%} |"

    for k, m in r["prototypes"].items():
        lines.append(row(f"prototypes, {k} shot{'s' if k != '1' else ''}" +
                         (f" ({m['episodes']} episodes)" if m["episodes"] > 1 else ""), m))
    lines += [row(f"k-NN (k={r['knn']['k']}), majority", r["knn"]["majority"]),
              row(f"k-NN (k={r['knn']['k']}), weighted", r["knn"]["weighted"])]
    dc = r["diffusion_classifier"]
    if "skipped" in dc:
        lines += ["", f"Diffusion classifier: skipped ({dc['skipped']})."]
    else:
        lines.append(row(f"diffusion classifier ({dc['n_images']} test images)", dc))
        lines += ["", f"Diffusion classifier: {dc['calls_per_image']} denoiser calls per image with adaptive pruning "
                      f"(schedule {dc['schedule']}: new (t, eps) samples, candidates kept; t in "
                      f"{dc.get('t_range', [1, 1000])}), instead of "
                      f"{dc['exhaustive_calls_per_image']} for all {dc['n_candidates']} classes; {dc['seconds']} s; "
                      f"each class scored with {dc.get('condition', 'prototype')} r. "
                      f"Prototypes (all shots) on the same images: {dc['prototypes_all_same_images']['accuracy']:.2%}"
                      + (f", k-NN: {dc['knn_same_images']['accuracy']:.2%}" if "knn_same_images" in dc else "") + "."]
    if r["classes_without_references"]:
        lines += ["", f"Classes without train references (never predicted): {r['classes_without_references']}"]
    if "binary" in r:
        b = r["binary"]
        lines += ["", f"## Binary detection: `{b['pattern']}` against the rest", "",
                  f"{len(b['positive_classes'])} positive classes; {b['n_test_positive']} of {b['n_test']} test "
                  f"images positive; chance {b['chance_accuracy']:.2%}.", "",
                  "| method | accuracy | F1 | precision | recall | balanced acc. |", "|---|---|---|---|---|---|"]
        for name in ("two_prototypes", "class_prototypes", "knn", "diffusion_classifier"):
            if name in b:
                m = b[name]
                lines.append(f"| {name.replace('_', ' ')} | {m['accuracy']:.2%} | {m['f1']:.3f} | {m['precision']:.3f} "
                             f"| {m['recall']:.3f} | {m['balanced_accuracy']:.2%} |")
    return "\n".join(lines) + "\n"


def shift_report(r: dict) -> str:
    sev = [row["severity"] for row in next(iter(r["shifts"].values()))] if r["shifts"] else []
    c = r["clean"]
    lines = [
        f"# Robustness of {r['bundle']} to instrument-like shifts", "",
        f"{r['n_images']} {r['part']} images of {r['data']}; {r['n_skipped']} skipped (classes the model does not "
        f"know), {r['n_unreadable']} unreadable. Each cell: top-1 accuracy (macro F1) after applying the shift to "
        f"the raw image. **Clean: {c['accuracy']:.2%} ({c['macro_f1']:.3f})**; chance "
        f"(most common class): {r['chance_accuracy']:.2%}. Severity 1 is mild, 5 severe; the parameter of each "
        f"level is listed below the table.", "",
        "| shift | " + " | ".join(f"severity {v}" for v in sev) + " |", "|---|" + "---|" * len(sev),
    ]
    for s, rows in r["shifts"].items():
        lines.append(f"| {s} | " + " | ".join(f"{row['accuracy']:.2%} ({row['macro_f1']:.3f})" for row in rows) + " |")
    lines += ["", "Levels: " + "; ".join(f"{s}: " + ", ".join(lv.values()) for s, lv in r["levels"].items()), "",
              "![robustness](robustness.png)", "", "![examples](shift_examples.png)", ""]
    return "\n".join(lines)


# ---- the controlled comparison (workflows.compare) ----

COMPARE_METRICS = {"accuracy": "top-1", "macro_f1": "macro F1", "balanced_accuracy": "bal. acc", "f1_head": "F1 head",
           "f1_medium": "F1 medium", "f1_tail": "F1 tail", "nmi": "NMI", "ari": "ARI"}


def readout_name(head: str, metadata: bool) -> str:
    """The comparison's name for a fused readout, e.g. 'MLP, top-k pairs + measurements'."""
    return f"{head if head == 'linear' else head.upper()}, top-k pairs" + (" + measurements" if metadata else "")


def _fmt(v, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.1%}" if pct else f"{v:.3f}"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


def compare_report(r: dict) -> str:
    """compare.md: one table per setting, every method and readout."""
    lo, hi = r["shots"]
    lines = ["# Controlled comparison: same data, same budget, same probe", "",
             f"Every method trained from scratch for {r['budget_images']:,} training images seen (seed {r['seed']}, "
             f"{r['image_size']} px); features probed by the same batched linear probe (best (block, timestep) "
             f"chosen on val, test reported once); k-means (k = number of classes) on the chosen pair's test "
             f"features. Head / medium / tail: classes with > {hi} / {lo}-{hi} / < {lo} training images; "
             f"their score is the macro F1 over the group's classes."]
    if r.get("fusion"):
        f = r["fusion"]
        lines[-1] += (f" Every method is also read the classifier recipe's way (rows "
                      f"'{readout_name(f['head'], f['metadata'])}'): one "
                      f"{f['head']} head on its top-k (block, timestep) pairs by val accuracy, k in {f['ks']} "
                      f"chosen on val" + (f", with the objects' size and shape measurements (weight "
                                          f"{f['metadata_weight']:g})" if f["metadata"] else "")
                      + "; trained on train only.")
    lines.append("")
    for setting in r["settings"]:
        s = r["splits"][setting]
        counts = ", ".join(f"{g} {len(c)}" for g, c in s["groups"].items())
        lines += [f"## {setting}", "",
                  f"{s['n_classes']} classes ({counts}); train / val / test = {s['sizes']['train']} / "
                  f"{s['sizes']['val']} / {s['sizes']['test']} images; split {s['manifest']}.", "",
                  "| method | eval | top-1 | macro F1 | bal. acc | F1 head | F1 medium | F1 tail | NMI | ARI | "
                  "best block, t | params | images seen | train time | img/s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in (x for x in r["rows"] if x["setting"] == setting):
            where = row["block"] if row["timestep"] is None else f"{row['block']}, {row['timestep']}"
            lines.append(
                f"| {row['method']} | {row['eval']} | {_fmt(row['accuracy'], True)} | {_fmt(row['macro_f1'])} | "
                f"{_fmt(row['balanced_accuracy'], True)} | {_fmt(row['f1_head'])} | {_fmt(row['f1_medium'])} | "
                f"{_fmt(row['f1_tail'])} | {_fmt(row['nmi'])} | {_fmt(row['ari'])} | {where} | "
                f"{row['params'] / 1e6:.2f} M | {row['images_seen']:,} | {_duration(row['train_seconds'])} | "
                f"{row['images_per_s']:.0f} |")
        lines.append("")
    lines += ["![comparison](compare.png)", ""]
    return "\n".join(lines)


def _compute(x: dict) -> str:
    if x["cpu_hours"] is None and x.get("gpu_hours") is None:  # written before compare.json recorded its threads
        return f"{x['train_seconds'] / 60:.1f} min, threads not recorded"
    if x["cpu_hours"] is None:
        return f"{x['gpu_hours'] * 60:.1f} GPU-min"
    if x.get("cpu_hours_estimated"):
        return f"~{x['cpu_hours']:.2f} CPU-h est., {x['gpu_hours'] * 60:.1f} GPU-min"
    return f"{x['cpu_hours']:.2f} CPU-h"


def curves_report(r: dict) -> str:
    """curves.md: accuracy against pretraining compute and against labelled images per class."""
    lines = ["# The comparison as curves", "",
             "Test top-1 of each method's linear probe (best (block, timestep) chosen on val) at each pretraining "
             "budget (training images seen), the supervised network's own head (end to end) and, where run, the "
             "classifier recipe's readout. Compute: pretraining wall time x the threads torch used (CPU-hours) for "
             "runs trained on a CPU; for runs trained on a GPU, the GPU time and the CPU-hours the same method "
             "took per image at its largest CPU-trained budget (estimated). Then, at each method's largest budget, "
             "the same probe trained on a few labelled images per class (random draws, mean +- std; the full val "
             "part still stops training).", ""]
    for setting in r["settings"]:
        mine = [x for x in r["rows"] if x["setting"] == setting]
        lines += [f"## {setting}: accuracy against pretraining compute", "",
                  "| method | eval | " + " | ".join(f"{b:,} images" for b in r["budgets"]) + " |",
                  "|---|---|" + "---|" * len(r["budgets"])]
        for method, ev in dict.fromkeys((x["method"], x["eval"]) for x in mine):
            cells = []
            for b in r["budgets"]:
                x = next((x for x in mine if x["budget_images"] == b and (x["method"], x["eval"]) == (method, ev)),
                         None)
                cells.append("–" if x is None else f"{_fmt(x['accuracy'], True)} ({_compute(x)})")
            lines.append(f"| {method} | {ev} | " + " | ".join(cells) + " |")
        curve = [x for x in r["label_curves"] if x["setting"] == setting]
        lines += ["", f"## {setting}: accuracy against labelled images per class", "",
                  "| method | pretrained on | " + " | ".join("all" if k is None else f"{k}" for k in r["label_shots"])
                  + " |", "|---|---|" + "---|" * len(r["label_shots"])]
        for method in dict.fromkeys(x["method"] for x in curve):
            points = {x["shots"]: x for x in curve if x["method"] == method}
            budget = next(iter(points.values())).get("budget_images")
            lines.append(f"| {method} | " + ("–" if budget is None else f"{budget:,} images") + " | " + " | ".join(
                f"{points[k]['accuracy_mean']:.1%} +- {points[k]['accuracy_std']:.1%}" if k in points else "–"
                for k in r["label_shots"]) + " |")
        lines.append("")
    lines += ["![compute](curves_compute.png)", "", "![labels](curves_labels.png)", ""]
    return "\n".join(lines)


# ---- the study (workflows.study) ----

def _pct(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1%}"


def study_report(s: dict) -> str:
    """study.md from a study.json dict: every stage that ran, its numbers and figures."""
    shared, machine = s["shared"], s.get("machine", "an unrecorded machine")
    d, lines = s["stages"], [f"# diffprobe study: {s['name']}", "",
                             f"Config `{s['config']}`; data `{shared['data']}`; seed {shared['seed']}; "
                             f"{shared['image_size']} px; diffprobe {s['version']}, commit "
                             f"{', '.join(c[:12] + c[40:] for c in s['commits'])}. "
                             f"Total {s['wall_minutes']:.0f} min on {machine}; stage times: " +
                             ", ".join(f"{k} {v['wall_seconds'] / 60:.1f} min{' (reused)' if v['reused'] else ''}"
                                       for k, v in s["timings"].items()) + ".", ""]
    if "split" in d:
        lines += [f"Split: {d['split']['sizes']} images, {d['split']['n_classes']} classes.", ""]
    if "pretrain" in d:
        p = d["pretrain"]
        name = "Supervised CNN (trained with the train labels)" if p.get("method") == "supervised" else "DDPM U-Net"
        lines += [f"{name}: {p.get('params', 0) / 1e6:.2f}M parameters, {p.get('images_seen', 0):,} images seen, "
                  f"{p.get('elapsed_s', 0) / 60:.0f} min of training.", ""]
    if "probe" in d:
        p = d["probe"]
        lines += ["## Linear probes over (block, timestep)", "",
                  f"Best pair chosen on val, over {len(p['per_seed'])} probe seed(s): **test top-1 "
                  f"{p['test_accuracy']['mean']:.1%} ± {p['test_accuracy']['std']:.1%}, macro F1 "
                  f"{p['test_macro_f1']['mean']:.3f} ± {p['test_macro_f1']['std']:.3f}**, balanced accuracy "
                  f"{p['test_balanced_accuracy']['mean']:.1%} (chance {p['chance_accuracy']:.1%}).", "",
                  "| seed | best pair | val top-1 | test top-1 | test macro F1 |", "|---|---|---|---|---|"]
        lines += [f"| {r['seed']} | {r['block']} t={r['timestep']} | {r['val_accuracy']:.1%} | {r['test_accuracy']:.1%} "
                  f"| {r['test_macro_f1']:.3f} |" for r in p["per_seed"]]
        lines += ["", "![heatmap](heatmap.png)", "", "![confusion](confusion.png)", ""]
    if "cluster" in d:
        c = d["cluster"]
        lines += [f"k-means (k = {c['k']}) on the best pair's test features: NMI {c['nmi']:.3f}, ARI {c['ari']:.3f}, "
                  f"purity {c['purity']:.3f}.", ""]
    if "fusion" in d:
        f = d["fusion"]
        lines += ["## Fused pairs", "", f"Top {f['best']['k']} pairs (k chosen on val): test top-1 "
                  f"{f['best']['test_accuracy']:.1%}, macro F1 {f['best']['test_macro_f1']:.3f}, log loss "
                  f"{f['best']['test_log_loss']:.3f}; best single pair {f['best_single_pair']['test_accuracy']:.1%}, "
                  f"{f['best_single_pair']['test_macro_f1']:.3f}."]
        if "refit" in f:
            r = f["refit"]
            lines[-1] += (f" Trained again on train + val (the bundled classifier): **test top-1 "
                          f"{r['test_accuracy']:.1%}, macro F1 {r['test_macro_f1']:.3f}, log loss {r['test_log_loss']:.3f}**.")
        lines.append("")
    if "ensemble" in d:
        e = d["ensemble"]
        lines += ["## Two readings, a head each, averaged", "",
                  f"The fused head above and one on the images {e['second_reading']} (k = {e['second_k']}, test top-1 "
                  f"{e['second_test_accuracy']:.1%} alone), log-probabilities averaged: **test top-1 "
                  f"{e['test_accuracy']:.1%}, macro F1 {e['test_macro_f1']:.3f}, log loss {e['test_log_loss']:.3f}**"
                  f" (`{e['bundle']}`).", ""]
    if "compare" in d:
        lines += ["## Controlled comparison (same split, budget and probe)", "",
                  "| setting | method | eval | top-1 | macro F1 | bal. acc | F1 head / medium / tail | NMI |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in d["compare"]["rows"]:
            f1s = " / ".join("–" if r.get(g) is None else f"{r[g]:.3f}" for g in ("f1_head", "f1_medium", "f1_tail"))
            nmi = "–" if r.get("nmi") is None else f"{r['nmi']:.3f}"
            lines.append(f"| {r['setting']} | {r['method']} | {r['eval']} | {r['accuracy']:.1%} | {r['macro_f1']:.3f} | "
                         f"{r['balanced_accuracy']:.1%} | {f1s} | {nmi} |")
        lines += ["", "![compare](compare.png)", ""]
    if "shift" in d:
        sh = d["shift"]
        which = "the fused head" if sh.get("classifier") == "fusion" else "the best pair's linear probe"
        lines += ["## Robustness (test top-1)", "", f"The DDPM features read by {which}; clean {sh['clean']:.1%}.", "",
                  "| shift | " + " | ".join(f"severity {v}" for v in sh["severities"]) + " |",
                  "|---|" + "---|" * len(sh["severities"])]
        lines += [f"| {k} | " + " | ".join(_pct(a) for a in accs) + " |" for k, accs in sh["accuracy"].items()]
        lines += ["", "![robustness](robustness.png)", "", "![shift_examples](shift_examples.png)", ""]
    if "zeroshot" in d:
        z = d["zeroshot"]
        shots = " / ".join("all" if k == 0 else str(k) for k in s["sections"]["zeroshot"]["shots"])
        lines += ["## Zero-shot (no classifier trained on labels)", "",
                  f"| model | representation | prototypes, {shots} shots | k-NN | diffusion classifier | "
                  "binary F1 (prototypes / k-NN) |", "|---|---|---|---|---|---|"]
        for name, r in z.items():
            if name == "skipped":
                continue
            protos = " / ".join(_pct(v["accuracy"]) for v in r["prototypes"].values())
            dc = r["diffusion_classifier"]
            dct = "–" if "skipped" in dc else f"{dc['accuracy']:.1%} ({dc['calls_per_image']:.0f} calls/image)"
            b = r["binary"]
            bt = "–" if not b else f"{b['two_prototypes']['f1']:.3f} / {b['knn']['f1']:.3f}"
            rep = f"{r['representation']['block']} t={r['representation']['timestep']}"
            lines.append(f"| {name} | {rep} | {protos} | {_pct(r['knn']['accuracy'])} | {dct} | {bt} |")
        lines += [""] + [f"Skipped {k}: {v}." for k, v in z.get("skipped", {}).items()] + [""]
        if "rcdit_samples" in s["figures"]:
            lines += ["RC-DiT samples:", "", "![rcdit_samples](rcdit_samples.png)", ""]
    if "samples" in s["figures"]:
        lines += ["DDPM samples:", "", "![samples](samples.png)", ""]
    return "\n".join(lines)
