//! Scale-out: two, then three worker processes on one queue share a backlog (published as fast
//! as confirms allow), with no duplicate decision and no duplicate HL7 result at the LIS.

use crate::checks::{finish, settle};
use crate::kill::share;
use crate::world::{Services, World, captures};

async fn scale_out(k: usize) {
    let n = captures();
    let w = World::fleet(&Services::shared(), n).await;
    let mut workers = Vec::new();
    for i in 0..k {
        workers.push(w.worker(&format!("worker-{i}")).await);
    }
    let stream = w.stream(0);
    let published = stream.done().await;
    let names: Vec<String> = (0..k).map(|i| format!("worker-{i}")).collect();
    let logs: Vec<&str> = names.iter().map(String::as_str).collect();
    settle(&w, 300, &logs).await;
    let shares = share(&w).await;
    for p in &workers {
        let pid = p.child.id().to_string();
        let mine = shares
            .iter()
            .find(|(x, _)| *x == pid)
            .map_or(0, |(_, c)| *c);
        assert!(
            mine > 0,
            "{} (pid {pid}) decided nothing: {shares:?}",
            p.name
        );
    }
    assert_eq!(
        shares.len(),
        k,
        "decisions from unknown workers: {shares:?}"
    );
    for p in workers {
        w.assert_stops(p, 40);
    }
    let extra = format!("decisions per worker pid {shares:?}; publisher {published:?}");
    finish(w, &format!("scale-out {k} workers"), &extra).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_two_workers_share_one_queue() {
    scale_out(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_three_workers_share_one_queue() {
    scale_out(3).await;
}
