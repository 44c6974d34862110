//! Tests of the journal: bounds, resume from an id, followers, lag, close.

use super::*;

#[tokio::test]
async fn keeps_the_last_entries_and_resumes_after_an_id() {
    let j = Journal::new(3);
    for i in 0..5 {
        j.push(i);
    }
    assert_eq!(j.tail(10), vec![(3, 2), (4, 3), (5, 4)]);
    assert_eq!(j.since(4), vec![(5, 4)]);
    let mut s = j.subscribe(0);
    assert_eq!(s.next().await, Some(Item::Missed(2)));
    assert_eq!(s.next().await, Some(Item::Entry(3, 2)));
}

#[tokio::test]
async fn followers_see_new_entries_and_end_on_close() {
    let j = std::sync::Arc::new(Journal::new(10));
    j.push("a");
    let mut s = j.subscribe(1);
    let j2 = j.clone();
    let h = tokio::spawn(async move {
        let mut got = vec![];
        while let Some(item) = s.next().await {
            got.push(item);
        }
        got
    });
    tokio::task::yield_now().await;
    j2.push("b");
    j2.push("c");
    j2.close();
    let got = h.await.unwrap();
    assert_eq!(got, vec![Item::Entry(2, "b"), Item::Entry(3, "c")]);
}
