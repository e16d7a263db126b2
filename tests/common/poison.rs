//! A store that refuses one kind of message, shared by the tests of both binaries that include
//! this file with `#[path]` (the golden batch tests and the server-backed trust tests).

use loket::store::Store;

/// A trigger that refuses to record inbound mail whose subject says POISON: an error that no
/// retry cures.
pub async fn poison(store: &Store) {
    sqlx::query(
        "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.direction = 'in' AND NEW.subject LIKE '%POISON%' \
         BEGIN SELECT RAISE(ABORT, 'poisoned for the test'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
}
