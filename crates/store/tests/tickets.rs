//! zk-nym tickets: a serial number is spent once, for good (restarts, forgotten clients).

mod common;

use common::{at, client, db_path, open};
use rusqlite::Connection;

#[tokio::test]
async fn a_serial_number_is_spent_once_and_stays_spent() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    store.upsert_shared_key(client(1), [1; 32]).await.unwrap();
    let serial = vec![7u8; 48];
    assert!(!store.ticket_spent(serial.clone()).await.unwrap());
    let id = store
        .insert_received_ticket(client(1), at(100), serial.clone(), b"credential".to_vec())
        .await
        .unwrap();
    assert!(id.is_some());
    assert!(store.ticket_spent(serial.clone()).await.unwrap());
    let again = store
        .insert_received_ticket(client(2), at(101), serial.clone(), b"other".to_vec())
        .await
        .unwrap();
    assert_eq!(again, None, "a second spend changes nothing");

    // Forgetting the client keeps its spent serial numbers.
    store.forget_client(client(1)).await.unwrap();
    store.close().await.unwrap();
    let store = open(&path);
    assert!(
        store.ticket_spent(serial.clone()).await.unwrap(),
        "after a restart"
    );
    assert!(!store.ticket_spent(vec![8; 48]).await.unwrap());
    store.close().await.unwrap();

    let conn = Connection::open(&path).unwrap();
    let (client_id, received_at, data): (Option<i64>, i64, Vec<u8>) = conn
        .query_row(
            "SELECT r.client_id, r.received_at, d.data
             FROM received_ticket r JOIN ticket_data d ON d.ticket_id = r.id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (client_id, received_at, data),
        (None, 100, b"credential".to_vec())
    );
}

#[tokio::test]
async fn verdicts_drop_the_credential_and_a_rejection_revokes_bandwidth() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    store.upsert_shared_key(client(1), [1; 32]).await.unwrap();
    store
        .set_bandwidth(
            client(1),
            gateway_store::Bandwidth {
                available: 1000,
                expiration: at(0),
            },
        )
        .await
        .unwrap();
    let good = store
        .insert_received_ticket(client(1), at(1), vec![1; 48], b"a".to_vec())
        .await
        .unwrap()
        .unwrap();
    let bad = store
        .insert_received_ticket(client(1), at(2), vec![2; 48], b"b".to_vec())
        .await
        .unwrap()
        .unwrap();
    store.mark_ticket_verified(good).await.unwrap();
    store.reject_ticket(bad, 3000).await.unwrap();
    assert_eq!(
        store.bandwidth(client(1)).await.unwrap().unwrap().available,
        -2000
    );
    assert!(
        store.ticket_spent(vec![2; 48]).await.unwrap(),
        "a rejected serial stays spent"
    );
    store.close().await.unwrap();
    let conn = Connection::open(&path).unwrap();
    let rows: Vec<(i64, Option<bool>, Option<Vec<u8>>)> = conn
        .prepare(
            "SELECT r.id, r.rejected, d.data FROM received_ticket r
             JOIN ticket_data d ON d.ticket_id = r.id ORDER BY r.id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, [(good, None, None), (bad, Some(true), None)]);
}

#[tokio::test]
async fn adding_bandwidth_keeps_a_revocation_made_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir));
    store.upsert_shared_key(client(1), [1; 32]).await.unwrap();
    let stored = store.add_bandwidth(client(1), 1000, at(5)).await.unwrap();
    assert_eq!((stored.available, stored.expiration), (1000, at(5)));
    let ticket = store
        .insert_received_ticket(client(1), at(1), vec![1; 48], b"a".to_vec())
        .await
        .unwrap()
        .unwrap();
    store.reject_ticket(ticket, 3000).await.unwrap();
    // A session that used 100 meanwhile saves its change, not its view.
    let stored = store.add_bandwidth(client(1), -100, at(6)).await.unwrap();
    assert_eq!((stored.available, stored.expiration), (-2100, at(6)));
    store.close().await.unwrap();
}
