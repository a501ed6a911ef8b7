use super::*;

fn key(b: u8) -> StoreKey {
    StoreKey::from_bytes([b; 32])
}

fn incoming(
    peer: &str,
    body: &str,
    stanza_id: Option<&str>,
    origin_id: Option<&str>,
    ts: i64,
) -> IncomingMessage {
    IncomingMessage {
        direction: Direction::Incoming,
        peer: peer.into(),
        sender: format!("{peer}/phone"),
        body: body.into(),
        origin_id: origin_id.map(Into::into),
        stanza_id: stanza_id.map(Into::into),
        remote_id: None,
        timestamp_ms: ts,
        position: Position::Append,
        security: Default::default(),
        room: None,
    }
}

/// A message whose body and peer must never be readable on disk.
fn store_a_secret(store: &mut Store) {
    store
        .insert_outgoing(
            "bob@example.org",
            "alice@example.org",
            "secret-body-xyzzy",
            "o1",
            10,
        )
        .unwrap();
}

#[test]
fn reopening_with_the_same_key_keeps_data_and_nothing_is_plaintext_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    store_a_secret(&mut Store::open(dir.path(), &key(7)).unwrap());
    let store = Store::open(dir.path(), &key(7)).unwrap();
    let history = store.history("bob@example.org", None, 10).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].body, "secret-body-xyzzy");
    drop(store);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(!hay.contains("secret-body-xyzzy"));
        assert!(!hay.contains("SQLite format 3"));
        assert!(!hay.contains("bob@example.org"));
    }
}

#[test]
fn wrong_key_is_a_typed_error_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path(), &key(1)).unwrap();
    let db = dir.path().join(DB_FILE);
    let before = std::fs::read(&db).unwrap();
    assert_eq!(
        Store::open(dir.path(), &key(2)).err(),
        Some(OpenStoreError::WrongKey)
    );
    assert_eq!(std::fs::read(&db).unwrap(), before);
    // Without the key-check file SQLCipher's own HMAC check still refuses it.
    std::fs::remove_file(dir.path().join(KEY_CHECK_FILE)).unwrap();
    assert_eq!(
        Store::open(dir.path(), &key(2)).err(),
        Some(OpenStoreError::WrongKey)
    );
    assert!(Store::open(dir.path(), &key(1)).is_ok());
}

#[test]
fn a_damaged_file_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = Store::open(dir.path(), &key(3)).unwrap();
        store
            .insert_outgoing("bob@example.org", "me@example.org", "hi", "o1", 1)
            .unwrap();
    }
    let db = dir.path().join(DB_FILE);
    let mut bytes = std::fs::read(&db).unwrap();
    for b in bytes.iter_mut().skip(16).take(64) {
        *b ^= 0x5a;
    }
    std::fs::write(&db, bytes).unwrap();
    let _ = std::fs::remove_file(dir.path().join("waxwing.db-wal"));
    assert_eq!(
        Store::open(dir.path(), &key(3)).err(),
        Some(OpenStoreError::Corrupt)
    );
}

#[test]
fn invalid_hex_key_is_rejected() {
    assert_eq!(
        StoreKey::from_hex("abcd").err(),
        Some(OpenStoreError::InvalidKey)
    );
    assert!(StoreKey::from_hex(&"ab".repeat(32)).is_ok());
}

#[test]
fn outgoing_messages_sit_in_the_outbox_until_acked_and_never_move_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &key(4)).unwrap();
    let m = store
        .insert_outgoing("bob@x", "me@x", "one", "o1", 1)
        .unwrap();
    assert_eq!(m.state, MessageState::Queued);
    assert_eq!(store.outbox().unwrap().len(), 1);
    store.advance_outgoing(m.id, MessageState::Sent).unwrap();
    assert_eq!(
        store.outbox().unwrap().len(),
        1,
        "sent but not acked stays queued for resend"
    );
    store
        .advance_outgoing(m.id, MessageState::Delivered)
        .unwrap();
    assert!(store.outbox().unwrap().is_empty());
    assert_eq!(
        store.advance_outgoing(m.id, MessageState::Acked).unwrap(),
        None
    );
    assert_eq!(
        store.message(m.id).unwrap().unwrap().state,
        MessageState::Delivered
    );
    assert_eq!(
        store.outgoing_by_origin_id("bob@x", "o1").unwrap(),
        Some(m.id)
    );
}

/// Issue 12, defect 18: a sent carbon from another of our devices (no
/// origin-id, no archive id) and its archive copy are one message.
#[test]
fn a_sent_carbon_without_origin_id_and_its_archive_copy_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &key(5)).unwrap();
    let copy = |stanza_id: Option<&str>| IncomingMessage {
        direction: Direction::Outgoing,
        peer: "bob@x".into(),
        sender: "alice@x".into(),
        body: "from my laptop".into(),
        origin_id: None,
        stanza_id: stanza_id.map(Into::into),
        remote_id: Some("laptop-17".into()),
        timestamp_ms: 1,
        position: Position::Append,
        security: Default::default(),
        room: None,
    };
    let carbon = store.insert_incoming_batch(&[copy(None)]).unwrap();
    assert!(carbon[0].is_some());
    let archived = store.insert_incoming_batch(&[copy(Some("s9"))]).unwrap();
    assert!(archived[0].is_none(), "the archive copy is the carbon");
    assert_eq!(store.history("bob@x", None, 10).unwrap().len(), 1);
    // The same id on a message that already has another archive id is a
    // different message (ids are only unique per sender and stream).
    let other = store
        .insert_incoming_batch(&[IncomingMessage {
            body: "another".into(),
            ..copy(Some("s10"))
        }])
        .unwrap();
    assert!(other[0].is_some());
}

#[test]
fn incoming_duplicates_by_stanza_id_or_origin_id_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &key(5)).unwrap();
    let first = store
        .insert_incoming_batch(&[
            incoming("bob@x", "a", Some("s1"), Some("o1"), 1),
            incoming("bob@x", "a", Some("s1"), Some("o1"), 1),
            incoming("bob@x", "b", None, Some("o2"), 2),
        ])
        .unwrap();
    assert!(first[0].is_some() && first[1].is_none() && first[2].is_some());
    // The same message again, now with its archive id: a duplicate, but the id is learned.
    let again = store
        .insert_incoming_batch(&[incoming("bob@x", "b", Some("s2"), Some("o2"), 2)])
        .unwrap();
    assert_eq!(again, vec![None]);
    let history = store.history("bob@x", None, 10).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].stanza_id.as_deref(), Some("s2"));
    let convs = store.conversations().unwrap();
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].unread_count, 2);
    store.mark_read("bob@x").unwrap();
    assert_eq!(store.conversations().unwrap()[0].unread_count, 0);
}

#[test]
fn history_pages_newest_first_without_gaps_or_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &key(6)).unwrap();
    let batch: Vec<_> = (0..25)
        .map(|i| {
            incoming(
                "carol@x",
                &format!("m{i}"),
                Some(&format!("s{i}")),
                None,
                1000 + i / 2,
            )
        })
        .collect();
    store.insert_incoming_batch(&batch).unwrap();
    store
        .insert_outgoing("dave@x", "me@x", "other conversation", "od", 5000)
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.history("carol@x", cursor, 10).unwrap();
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        cursor = Some(HistoryCursor { id: last.id });
        seen.extend(page.into_iter().map(|m| m.body));
    }
    let expected: Vec<_> = (0..25).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(seen, expected);
    let convs = store.conversations().unwrap();
    assert_eq!(convs[0].peer, "dave@x");
    assert_eq!(
        convs[0].last_message.as_ref().unwrap().body,
        "other conversation"
    );
    assert_eq!(convs[1].last_message.as_ref().unwrap().body, "m24");
}

#[test]
fn a_full_disk_is_a_typed_error_and_loses_nothing_already_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &key(8)).unwrap();
    store
        .insert_outgoing("bob@x", "me@x", "kept", "o0", 1)
        .unwrap();
    let pages: u32 = store
        .conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    store.set_max_page_count(pages).unwrap();
    let big = "x".repeat(64 * 1024);
    let err = store
        .insert_outgoing("bob@x", "me@x", &big, "o1", 2)
        .unwrap_err();
    assert_eq!(err, StoreError::DiskFull);
    let history = store.history("bob@x", None, 10).unwrap();
    assert_eq!(
        history.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["kept"]
    );
    assert_eq!(store.outbox().unwrap().len(), 1);
}

#[test]
fn roster_replace_push_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &key(9)).unwrap();
    let bob = RosterEntry {
        jid: "bob@x".into(),
        name: Some("Bob".into()),
        subscription: Subscription::Both,
        pending_out: false,
        groups: vec!["Friends".into()],
    };
    store
        .replace_roster(std::slice::from_ref(&bob), Some("v1"))
        .unwrap();
    assert_eq!(store.roster().unwrap(), vec![bob.clone()]);
    let carol = RosterEntry {
        jid: "carol@x".into(),
        name: None,
        subscription: Subscription::None,
        pending_out: true,
        groups: vec![],
    };
    store
        .apply_roster_push(Some(&carol), None, Some("v2"))
        .unwrap();
    store
        .apply_roster_push(None, Some("bob@x"), Some("v3"))
        .unwrap();
    assert_eq!(store.roster().unwrap(), vec![carol]);
    assert_eq!(store.roster_version().unwrap().as_deref(), Some("v3"));
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &key(10)).unwrap();
        store
            .conn
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
    }
    assert!(matches!(
        Store::open(dir.path(), &key(10)),
        Err(OpenStoreError::TooNew { found: 99, .. })
    ));
}

/// Renumbering spreads a conversation out again without changing its order
/// and without giving two messages the same position (a tie would leave
/// their order to chance).
#[test]
fn renumbering_keeps_the_order_and_gives_every_message_its_own_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &key(3)).unwrap();
    let peer = "bob@example.org";
    // Live messages 1024 apart, then archive pages squeezed between them.
    let live: Vec<IncomingMessage> = (0..10)
        .map(|i| incoming(peer, &format!("live {i}"), Some(&format!("L{i}")), None, i))
        .collect();
    store.insert_incoming_batch(&live).unwrap();
    let mut page = Vec::new();
    for gap in 0..9 {
        for k in 0..5 {
            let mut m = incoming(
                peer,
                &format!("page {gap}.{k}"),
                Some(&format!("P{gap}.{k}")),
                None,
                0,
            );
            m.position = Position::At(1024.0 * (gap as f64 + 1.0) + 1e-3 * (k as f64 + 1.0));
            page.push(m);
        }
    }
    store.insert_incoming_batch(&page).unwrap();
    let order = |store: &Store| -> Vec<String> {
        let mut h = store.history(peer, None, 1000).unwrap();
        h.reverse();
        h.into_iter().map(|m| m.body).collect()
    };
    let before = order(&store);
    store.renumber(peer).unwrap();
    let after = order(&store);
    assert_eq!(after, before, "renumbering changed the order");
    let seqs: Vec<f64> = store
        .history(peer, None, 1000)
        .unwrap()
        .iter()
        .map(|m| store.seq_of(m.id).unwrap().unwrap())
        .collect();
    let mut distinct = seqs.clone();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    assert_eq!(distinct.len(), seqs.len(), "tied positions: {seqs:?}");
}

/// Issue 12, defect 9: deleted rows are overwritten (someone who later gets
/// the key finds no remnants in free pages), and the key wipes itself.
#[test]
fn deleted_content_is_overwritten_and_the_key_wipes_itself() {
    fn wipes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wipes_on_drop::<StoreKey>();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &key(4)).unwrap();
    let secure_delete: i64 = store
        .conn
        .query_row("PRAGMA secure_delete", [], |r| r.get(0))
        .unwrap();
    assert_eq!(secure_delete, 1);
    assert!(!dir.path().join("key-check.partial").exists());
    assert_eq!(
        std::fs::read(dir.path().join("key-check")).unwrap(),
        key(4).check_value()
    );
}

/// Every connect and every wake-up reads the outbox: it must start from the
/// outbox, not walk the whole history probing the outbox for each message
/// (what SQLite's planner chose for the plain join: 3 MB of pages decrypted
/// per wake-up against a store of 100k messages).
#[test]
fn reading_the_outbox_does_not_walk_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &key(1)).unwrap();
    let plan: Vec<String> = store
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", messages::outbox_query()))
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(plan[0].starts_with("SCAN o"), "{plan:?}");
    assert!(
        !plan.iter().any(|step| step.starts_with("SCAN m")),
        "{plan:?}"
    );
}

/// Issue 16 (the store on iOS): with a header salt the first 32 bytes of
/// the database are SQLite's own header, so iOS recognises the file in a
/// shared App Group container; nothing after them is readable, the store
/// reopens with the same key and salt, and any other key, salt or layout
/// is a typed `WrongKey` that touches nothing.
#[test]
fn a_plaintext_header_store_is_recognisable_as_sqlite_and_nothing_else_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let shared = |key_byte: u8, salt_byte: u8| {
        StoreKey::with_plaintext_header([key_byte; 32], [salt_byte; 16])
    };
    store_a_secret(&mut Store::open(dir.path(), &shared(7, 1)).unwrap());
    let db = dir.path().join(DB_FILE);
    let bytes = std::fs::read(&db).unwrap();
    assert_eq!(&bytes[..16], b"SQLite format 3\0", "iOS looks for this");
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let hay = String::from_utf8_lossy(&bytes[PLAINTEXT_HEADER_BYTES.min(bytes.len())..]);
        for secret in [
            "secret-body-xyzzy",
            "bob@example.org",
            "CREATE TABLE",
            "SQLite format 3",
        ] {
            assert!(!hay.contains(secret), "{secret} readable on disk");
        }
    }
    let before = std::fs::read(&db).unwrap();
    for other in [shared(8, 1), shared(7, 2), key(7)] {
        assert_eq!(
            Store::open(dir.path(), &other).err(),
            Some(OpenStoreError::WrongKey)
        );
    }
    assert_eq!(std::fs::read(&db).unwrap(), before);
    let store = Store::open(dir.path(), &shared(7, 1)).unwrap();
    let history = store.history("bob@example.org", None, 10).unwrap();
    assert_eq!(history[0].body, "secret-body-xyzzy");
    drop(store);
    // Without the key-check file, SQLCipher's own check refuses a wrong
    // salt too.
    std::fs::remove_file(dir.path().join(KEY_CHECK_FILE)).unwrap();
    assert_eq!(
        Store::open(dir.path(), &shared(7, 2)).err(),
        Some(OpenStoreError::WrongKey)
    );
}

/// Issue 13: trust recorded for a device whose key was never learned (the
/// old code trusted ids from unauthenticated messages, and verified devices
/// without a key) is void after the upgrade; trust bound to a key stays.
#[test]
fn migration_8_voids_trust_that_no_key_backs() {
    let dir = tempfile::tempdir().unwrap();
    let key = StoreKey::from_bytes([4; 32]);
    {
        let store = Store::open(dir.path(), &key).unwrap();
        store
            .conn
            .execute_batch(
                "INSERT INTO omemo_devices(jid, device_id, trust, first_seen_ms) VALUES
                     ('bob@example.org', 666, 1, 0), ('bob@example.org', 7, 2, 0);
                 INSERT INTO omemo_devices(jid, device_id, trust, first_seen_ms, identity_key) VALUES
                     ('bob@example.org', 1, 2, 0, zeroblob(32)), ('bob@example.org', 2, 1, 0, zeroblob(32));
                 DROP TABLE omemo_old_sessions;
                 ALTER TABLE conversations DROP COLUMN kind;
                 ALTER TABLE messages DROP COLUMN nick;
                 ALTER TABLE messages DROP COLUMN sender_jid;
                 DROP TABLE rooms;
                 PRAGMA user_version = 7;",
            )
            .unwrap();
    }
    let store = Store::open(dir.path(), &key).unwrap();
    let trust: Vec<(u32, DeviceTrust)> = store
        .omemo_devices("bob@example.org")
        .unwrap()
        .into_iter()
        .map(|d| (d.device_id, d.trust))
        .collect();
    assert_eq!(
        trust,
        vec![
            (1, DeviceTrust::Verified),
            (2, DeviceTrust::BlindlyTrusted),
            (7, DeviceTrust::Undecided),
            (666, DeviceTrust::Undecided),
        ]
    );
    assert!(store
        .omemo_old_sessions("bob@example.org", 1, 2)
        .unwrap()
        .is_empty());
}

#[test]
fn a_rooms_history_replay_starts_at_the_last_message_received_not_one_we_queued() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &StoreKey::from_bytes([5; 32])).unwrap();
    let room = "team@muc.example.org";
    let incoming = IncomingMessage {
        direction: Direction::Incoming,
        peer: room.into(),
        sender: format!("{room}/bob"),
        body: "hi".into(),
        origin_id: None,
        stanza_id: None,
        remote_id: Some("r1".into()),
        timestamp_ms: 1_000,
        position: Position::Append,
        security: Default::default(),
        room: Some(crate::store::RoomSender {
            nick: "bob".into(),
            real_jid: None,
        }),
    };
    store.insert_incoming_batch(&[incoming]).unwrap();
    store
        .insert_outgoing_to_room(room, "alice@example.org", "alice", "queued", "o1", 9_000)
        .unwrap();
    assert_eq!(store.last_message_ms(room).unwrap(), Some(1_000));
}
