"""The Markdown reports the commands write beside their JSON: plain results in, text out (no stage is
imported, so every stage may use them)."""

from __future__ import annotations


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
                      f"(schedule {dc['schedule']}: new (t, eps) samples, candidates kept), instead of "
                      f"{dc['exhaustive_calls_per_image']} for all {dc['n_candidates']} classes; {dc['seconds']} s. "
                      f"Prototypes (all shots) on the same images: {dc['prototypes_all_same_images']['accuracy']:.2%}."]
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
