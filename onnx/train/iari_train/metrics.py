"""Metrics of the paper (one-vs-rest per class) and the ensemble's relative plurality vote."""
from __future__ import annotations

import numpy as np

K = 5


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def plurality_vote(logits_per_model: list[np.ndarray]) -> np.ndarray:
    """Relative plurality of the argmax votes. Ties: the tied grade with the larger summed softmax
    probability (summed over the models) wins; if still equal, the lower grade index."""
    L = np.stack([np.asarray(l, np.float64) for l in logits_per_model])   # [M,N,K]
    votes = L.argmax(-1)                                                  # [M,N]
    counts = np.stack([(votes == k).sum(0) for k in range(K)], -1)        # [N,K]
    psum = softmax(L).sum(0)                                              # [N,K]
    best = counts.max(-1, keepdims=True)
    score = np.where(counts == best, psum, -np.inf)
    return score.argmax(-1)


def classification_metrics(y_true, y_pred) -> dict:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    n = len(y_true)
    cm = np.zeros((K, K), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    per = {}
    from .synth import CLASSES
    accs, precs, recs, f1s = [], [], [], []
    for k in range(K):
        tp = cm[k, k]
        fp = cm[:, k].sum() - tp
        fn = cm[k, :].sum() - tp
        tn = n - tp - fp - fn
        acc = (tp + tn) / n
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[CLASSES[k]] = {"accuracy": round(float(acc), 6), "precision": round(float(prec), 6),
                           "recall": round(float(rec), 6), "f1": round(float(f1), 6), "support": int(cm[k].sum())}
        accs.append(acc); precs.append(prec); recs.append(rec); f1s.append(f1)
    po = np.trace(cm) / n
    pe = (cm.sum(0) * cm.sum(1)).sum() / (n * n)
    kappa = (po - pe) / (1 - pe) if pe < 1 else 1.0
    i, j = np.meshgrid(np.arange(K), np.arange(K), indexing="ij")
    serious_mask = (np.abs(i - j) >= 2) | ((i == 0) != (j == 0))     # across neg/positive, or >= 2 grades
    serious = int(cm[serious_mask].sum())
    return {
        "n": int(n),
        "accuracy": round(float(po), 6),
        "mean_accuracy": round(float(np.mean(accs)), 6),
        "macro_precision": round(float(np.mean(precs)), 6),
        "macro_recall": round(float(np.mean(recs)), 6),
        "macro_f1": round(float(np.mean(f1s)), 6),
        "kappa": round(float(kappa), 6),
        "serious_errors": serious,
        "per_class": per,
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_axes": "rows = true grade, columns = predicted grade, order neg,1+,2+,3+,4+",
    }


def review_policy(logits_per_model, low_confidence=0.6, min_agreement=1.0):
    """The server's decision and review policy (src/classify/vote.rs, config [decision] defaults)
    for every image: (grade [N], flags list of sets, needs_review [N] bool)."""
    L = np.stack([np.asarray(l, np.float64) for l in logits_per_model])   # [M,N,K]
    M, N, _ = L.shape
    P = softmax(L)
    votes = L.argmax(-1)
    grades = plurality_vote(list(L))
    flags, review = [], np.zeros(N, bool)
    for i in range(N):
        g, v, f = grades[i], votes[:, i], set()
        c = np.bincount(v, minlength=K)
        if (c == c.max()).sum() > 1:
            f.add("tie")
        dis = v[v != g]
        if (np.abs(dis - g) >= 2).any():
            f.add("disagree_nonadjacent")
        elif len(dis):
            f.add("disagree_adjacent")
        if (v == 0).any() and (v > 0).any():
            f.add("sign_conflict")
        if P[v == g, i, g].mean() < low_confidence:
            f.add("low_confidence")
        flags.append(f)
        review[i] = bool(f) or c.max() / M < min_agreement
    return grades, flags, review


def serious(y_true, y_pred):
    """Across the neg/positive boundary, or two grades or more apart."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return ((y_true == 0) != (y_pred == 0)) | (np.abs(y_true - y_pred) >= 2)


def safety(y, logits_per_model, ood) -> dict:
    """Accuracy, review share and what the flags catch, with the shift flag `ood` [N] bool."""
    g, flags, review = review_policy(logits_per_model)
    ood = np.asarray(ood, bool)
    rv = review | ood
    err, ser = g != y, serious(y, g)
    return {"n": int(len(y)), "accuracy": float(np.mean(err == 0)), "errors": int(err.sum()),
            "errors_flagged": int((err & rv).sum()), "serious_errors": int(ser.sum()),
            "serious_flagged": int((ser & rv).sum()), "serious_unflagged": int((ser & ~rv).sum()),
            "serious_out_of_distribution": int((ser & ood).sum()),
            "out_of_distribution": int(ood.sum()), "ood_share": float(ood.mean()),
            "review_share": float(rv.mean()), "review_share_without_shift": float(review.mean()),
            "review_only_for_shift": int((ood & ~review).sum())}
