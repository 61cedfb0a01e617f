//! Inbox behaviour: insert, fetch, delete, quotas, retention, durability across reopen.

mod common;

use common::{at, client, db_path, is_quota_error, open, open_with};
use gateway_store::StoreError;

#[tokio::test]
async fn insert_then_fetch_in_insertion_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir));
    let mut ids = Vec::new();
    for n in 0..5u8 {
        ids.push(
            store
                .insert_message(client(1), vec![n; 3], at(100))
                .await
                .unwrap(),
        );
        store
            .insert_message(client(2), vec![9], at(100))
            .await
            .unwrap();
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    let fetched = store.fetch_messages(client(1), None, 100).await.unwrap();
    assert_eq!(fetched.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    for (n, message) in fetched.iter().enumerate() {
        assert_eq!(message.content, vec![n as u8; 3]);
    }
    assert!(store
        .fetch_messages(client(3), None, 100)
        .await
        .unwrap()
        .is_empty());
    store.close().await.unwrap();
}

#[tokio::test]
async fn fetch_pages_with_after_id_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir));
    for n in 0..10u8 {
        store
            .insert_message(client(1), vec![n], at(0))
            .await
            .unwrap();
        store
            .insert_message(client(2), vec![n], at(0))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = Vec::new();
    loop {
        let page = store.fetch_messages(client(1), after, 4).await.unwrap();
        if page.is_empty() {
            break;
        }
        pages.push(page.len());
        after = page.last().map(|m| m.id);
        seen.extend(page.into_iter().map(|m| m.content[0]));
    }
    assert_eq!(pages, [4, 4, 2]);
    assert_eq!(seen, (0..10).collect::<Vec<u8>>());
    assert!(store
        .fetch_messages(client(1), None, 0)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn delete_removes_only_given_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir));
    let mut ids = Vec::new();
    for n in 0..4u8 {
        ids.push(
            store
                .insert_message(client(1), vec![n], at(0))
                .await
                .unwrap(),
        );
    }
    // Unknown ids (already delivered, or never existed) are not an error.
    store
        .delete_messages(vec![ids[0], ids[2], 999_999])
        .await
        .unwrap();
    let left = store.fetch_messages(client(1), None, 10).await.unwrap();
    assert_eq!(
        left.iter().map(|m| m.id).collect::<Vec<_>>(),
        [ids[1], ids[3]]
    );
    store.delete_messages(Vec::new()).await.unwrap();
    assert_eq!(store.stats().await.unwrap().messages, 2);
}

#[tokio::test]
async fn quota_by_count_is_exact_and_freed_by_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&db_path(&dir), |c| {
        c.max_messages_per_client = 3;
        c.max_bytes_per_client = 0;
    });
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            store
                .insert_message(client(1), vec![1; 10], at(0))
                .await
                .unwrap(),
        );
    }
    let over = store.insert_message(client(1), vec![1], at(0)).await;
    match over {
        Err(StoreError::QuotaExceeded {
            messages, bytes, ..
        }) => assert_eq!((messages, bytes), (3, 30)),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    // Nothing was stored, and other clients are not affected.
    assert_eq!(
        store
            .fetch_messages(client(1), None, 10)
            .await
            .unwrap()
            .len(),
        3
    );
    store
        .insert_message(client(2), vec![1], at(0))
        .await
        .unwrap();

    store.delete_messages(vec![ids[0]]).await.unwrap();
    store
        .insert_message(client(1), vec![1], at(0))
        .await
        .unwrap();
    assert!(is_quota_error(
        &store.insert_message(client(1), vec![1], at(0)).await
    ));
}

#[tokio::test]
async fn quota_by_bytes_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&db_path(&dir), |c| {
        c.max_messages_per_client = 0;
        c.max_bytes_per_client = 100;
    });
    assert!(is_quota_error(
        &store.insert_message(client(1), vec![0; 101], at(0)).await
    ));
    let first = store
        .insert_message(client(1), vec![0; 60], at(0))
        .await
        .unwrap();
    store
        .insert_message(client(1), vec![0; 40], at(0))
        .await
        .unwrap();
    assert!(is_quota_error(
        &store.insert_message(client(1), vec![0; 1], at(0)).await
    ));
    store.delete_messages(vec![first]).await.unwrap();
    store
        .insert_message(client(1), vec![0; 60], at(0))
        .await
        .unwrap();
    assert!(is_quota_error(
        &store.insert_message(client(1), vec![0; 1], at(0)).await
    ));
    assert_eq!(store.stats().await.unwrap().message_bytes, 100);
}

#[tokio::test]
async fn quota_is_counted_from_disk_after_reopen_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let limit = |c: &mut gateway_store::StoreConfig| c.max_messages_per_client = 2;
    let store = open_with(&path, limit);
    store
        .insert_message(client(1), vec![1], at(10))
        .await
        .unwrap();
    store
        .insert_message(client(1), vec![1], at(20))
        .await
        .unwrap();
    store.close().await.unwrap();

    let store = open_with(&path, limit);
    assert!(is_quota_error(
        &store.insert_message(client(1), vec![1], at(30)).await
    ));
    assert_eq!(store.delete_messages_older_than(at(15)).await.unwrap(), 1);
    store
        .insert_message(client(1), vec![1], at(30))
        .await
        .unwrap();
    assert!(is_quota_error(
        &store.insert_message(client(1), vec![1], at(30)).await
    ));
}

#[tokio::test]
async fn retention_deletes_only_older_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir));
    for (n, ts) in [100, 200, 300].into_iter().enumerate() {
        store
            .insert_message(client(1), vec![n as u8], at(ts))
            .await
            .unwrap();
        store
            .insert_message(client(2), vec![n as u8], at(ts))
            .await
            .unwrap();
    }
    // Strictly older than the cutoff.
    assert_eq!(store.delete_messages_older_than(at(200)).await.unwrap(), 2);
    let left = store.fetch_messages(client(1), None, 10).await.unwrap();
    assert_eq!(
        left.iter().map(|m| m.content[0]).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(store.delete_messages_older_than(at(200)).await.unwrap(), 0);
    assert_eq!(store.stats().await.unwrap().messages, 4);
}

#[tokio::test]
async fn committed_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    let id = store
        .insert_message(client(1), b"hello".to_vec(), at(5))
        .await
        .unwrap();
    store.upsert_shared_key(client(1), [7; 32]).await.unwrap();
    store
        .set_last_used_authentication(client(1), at(1234))
        .await
        .unwrap();
    store
        .set_bandwidth(
            client(1),
            gateway_store::Bandwidth {
                available: 1 << 30,
                expiration: at(99),
            },
        )
        .await
        .unwrap();
    store.close().await.unwrap();

    let store = open(&path);
    let messages = store.fetch_messages(client(1), None, 10).await.unwrap();
    assert_eq!(
        (messages[0].id, messages[0].content.as_slice()),
        (id, &b"hello"[..])
    );
    let key = store.shared_key(client(1)).await.unwrap().unwrap();
    assert_eq!(
        (key.key, key.last_used_authentication),
        ([7; 32], Some(at(1234)))
    );
    let bandwidth = store.bandwidth(client(1)).await.unwrap().unwrap();
    assert_eq!(
        (bandwidth.available, bandwidth.expiration),
        (1 << 30, at(99))
    );
    // Ids keep increasing across reopen (AUTOINCREMENT), even after deletes.
    store.delete_messages(vec![id]).await.unwrap();
    assert!(
        store
            .insert_message(client(1), vec![], at(6))
            .await
            .unwrap()
            > id
    );
}

#[tokio::test]
async fn acknowledged_writes_are_on_disk_without_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    store
        .insert_message(client(1), vec![1], at(0))
        .await
        .unwrap();
    // Dropping the last handle does not wait; what was acknowledged is already committed,
    // and another connection sees it at once.
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let count: i64 = conn
        .query_row("SELECT COUNT(*) FROM message_store", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn queued_messages_commit_in_queue_order_without_waiting_for_each() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir));
    let mut pending = Vec::new();
    for n in 0..200u8 {
        pending.push(
            store
                .queue_message(client(1), vec![n], at(100))
                .await
                .unwrap(),
        );
    }
    let mut ids = Vec::new();
    for p in pending {
        ids.push(p.committed().await.unwrap());
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids follow queue order"
    );
    let fetched = store.fetch_messages(client(1), None, 1000).await.unwrap();
    let contents: Vec<u8> = fetched.iter().map(|m| m.content[0]).collect();
    assert_eq!(contents, (0..200u8).collect::<Vec<_>>());
}

#[tokio::test]
async fn batched_delete_frees_each_clients_quota_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&db_path(&dir), |c| {
        c.max_messages_per_client = 5;
        c.max_bytes_per_client = 50;
    });
    let mut one = Vec::new();
    let mut two = Vec::new();
    for _ in 0..5 {
        one.push(
            store
                .insert_message(client(1), vec![1; 10], at(0))
                .await
                .unwrap(),
        );
        store
            .insert_message(client(3), vec![3], at(0))
            .await
            .unwrap();
    }
    for _ in 0..3 {
        two.push(
            store
                .insert_message(client(2), vec![2; 10], at(0))
                .await
                .unwrap(),
        );
    }
    // Two clients in one call, with an id given twice, ids that never existed, and (in the
    // second call) ids already deleted: only rows really deleted free quota.
    store
        .delete_messages(vec![one[0], two[0], 999_999, two[1], one[0], -5])
        .await
        .unwrap();
    store.delete_messages(vec![one[0], two[0]]).await.unwrap();

    // Client 1: 4 × 10 B stored, room for exactly one more of 10 B.
    assert!(is_quota_error(
        &store.insert_message(client(1), vec![1; 11], at(0)).await
    ));
    store
        .insert_message(client(1), vec![1; 10], at(0))
        .await
        .unwrap();
    match store.insert_message(client(1), vec![], at(0)).await {
        Err(StoreError::QuotaExceeded {
            messages, bytes, ..
        }) => assert_eq!((messages, bytes), (5, 50)),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    // Client 2: 1 × 10 B stored, room for four more.
    for _ in 0..4 {
        store
            .insert_message(client(2), vec![2; 10], at(0))
            .await
            .unwrap();
    }
    assert!(is_quota_error(
        &store.insert_message(client(2), vec![], at(0)).await
    ));
    // Client 3 was not touched: still full by count.
    match store.insert_message(client(3), vec![], at(0)).await {
        Err(StoreError::QuotaExceeded {
            messages, bytes, ..
        }) => assert_eq!((messages, bytes), (5, 5)),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.messages, stats.message_bytes), (15, 105));
}

#[tokio::test]
async fn delete_of_more_ids_than_one_statement_takes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&db_path(&dir), |c| {
        c.max_messages_per_client = 100;
        c.max_bytes_per_client = 0;
    });
    let mut ids: [Vec<i64>; 3] = Default::default();
    for n in 0..300 {
        let owner = n % 3;
        let id = store
            .insert_message(client(owner as u8), vec![owner as u8; 4], at(0))
            .await
            .unwrap();
        ids[owner].push(id);
    }
    // All of client 0's, 60 of client 1's, none of client 2's, and 40 ids that do not exist,
    // interleaved: 200 ids, more than one statement's worth (100).
    let mut delete = Vec::new();
    for (n, (&zero, &one)) in ids[0].iter().zip(&ids[1]).enumerate() {
        delete.push(zero);
        delete.push(if n < 60 { one } else { 1_000_000 + n as i64 });
    }
    store.delete_messages(delete).await.unwrap();

    let left = |c: u8| {
        let store = store.clone();
        async move {
            store
                .fetch_messages(client(c), None, 1000)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.id)
                .collect::<Vec<_>>()
        }
    };
    assert!(left(0).await.is_empty());
    assert_eq!(left(1).await, ids[1][60..]);
    assert_eq!(left(2).await, ids[2]);
    // Quota freed exactly: 100 more for client 0, 60 for client 1, none for client 2.
    for (c, room) in [(0u8, 100), (1, 60), (2, 0)] {
        for _ in 0..room {
            store
                .insert_message(client(c), vec![c; 4], at(0))
                .await
                .unwrap();
        }
        assert!(is_quota_error(
            &store.insert_message(client(c), vec![c; 4], at(0)).await
        ));
    }
}
