//! [`MemStore`]: the [`Store`] contract in memory. Nothing survives the process; every
//! write is "durable" at once (acknowledgements run inside `submit`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{
    page, CommitAck, Created, ExecutionRecord, ListFilter, Page, QueueMessage, RecordStatus, Store, StoreError,
    TopicMessage, Write,
};

#[derive(Default)]
struct Data {
    /// Records in start order (index = creation order).
    records: Vec<ExecutionRecord>,
    by_arn: HashMap<String, usize>,
    journals: HashMap<Arc<str>, Vec<Vec<u8>>>,
    histories: HashMap<Arc<str>, BTreeMap<u32, Vec<u8>>>,
    tokens: HashMap<String, String>,
    queues: BTreeMap<String, VecDeque<QueueMessage>>,
    topics: BTreeMap<String, Vec<TopicMessage>>,
}

/// Everything in memory, behind one lock.
#[derive(Default)]
pub struct MemStore {
    data: Mutex<Data>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }
}

impl Data {
    fn apply(&mut self, w: Write) {
        match w {
            Write::Journal { execution_arn, seq, entry } => {
                let j = self.journals.entry(execution_arn).or_default();
                debug_assert_eq!(j.len(), seq as usize, "journal entries come in order");
                j.push(entry);
            }
            Write::Event { execution_arn, id, json } => {
                self.histories.entry(execution_arn).or_default().insert(id, json);
            }
            Write::Record(r) => match self.by_arn.get(&r.execution_arn) {
                Some(&i) => self.records[i] = *r,
                None => {
                    self.by_arn.insert(r.execution_arn.clone(), self.records.len());
                    self.records.push(*r);
                }
            },
            Write::Token { token, execution_arn: Some(arn) } => {
                self.tokens.insert(token, arn.to_string());
            }
            Write::Token { token, execution_arn: None } => {
                self.tokens.remove(&token);
            }
        }
    }
}

impl Store for MemStore {
    fn create_execution(&self, record: &ExecutionRecord, first: Vec<Write>) -> Result<Created, StoreError> {
        let mut d = self.data.lock();
        if let Some(&i) = d.by_arn.get(&record.execution_arn) {
            return Ok(Created::Existing(Box::new(d.records[i].clone())));
        }
        d.apply(Write::Record(Box::new(record.clone())));
        for w in first {
            d.apply(w);
        }
        Ok(Created::New)
    }

    fn execution(&self, execution_arn: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let d = self.data.lock();
        Ok(d.by_arn.get(execution_arn).map(|&i| d.records[i].clone()))
    }

    fn list_executions(
        &self,
        filter: &ListFilter,
        max_results: usize,
        next_token: Option<&str>,
    ) -> Result<Page<ExecutionRecord>, StoreError> {
        let d = self.data.lock();
        let matching: Vec<&ExecutionRecord> = d
            .records
            .iter()
            .rev()
            .filter(|r| filter.state_machine_arn.as_deref().is_none_or(|m| r.state_machine_arn == m))
            .filter(|r| filter.status.is_none_or(|s| r.status == s))
            .collect();
        let p = page(matching.into_iter(), max_results, next_token)?;
        Ok(Page { items: p.items.into_iter().cloned().collect(), next_token: p.next_token })
    }

    fn unfinished(&self, state_machine_arn: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        let d = self.data.lock();
        Ok(d.records
            .iter()
            .filter(|r| r.state_machine_arn == state_machine_arn && r.status == RecordStatus::Running)
            .cloned()
            .collect())
    }

    fn journal(&self, execution_arn: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.data.lock().journals.get(execution_arn).cloned().unwrap_or_default())
    }

    fn history(
        &self,
        execution_arn: &str,
        reverse: bool,
        max_results: usize,
        next_token: Option<&str>,
    ) -> Result<Page<Vec<u8>>, StoreError> {
        let d = self.data.lock();
        let Some(h) = d.histories.get(execution_arn) else {
            return page(std::iter::empty::<Vec<u8>>(), max_results, next_token);
        };
        if reverse {
            page(h.values().rev().cloned().collect::<Vec<_>>().into_iter(), max_results, next_token)
        } else {
            page(h.values().cloned().collect::<Vec<_>>().into_iter(), max_results, next_token)
        }
    }

    fn token(&self, token: &str) -> Result<Option<String>, StoreError> {
        Ok(self.data.lock().tokens.get(token).cloned())
    }

    fn submit(&self, writes: Vec<Write>, ack: CommitAck) {
        {
            let mut d = self.data.lock();
            for w in writes {
                d.apply(w);
            }
        }
        ack(Ok(()))
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn create_queue(&self, name: &str) -> Result<(), StoreError> {
        self.data.lock().queues.entry(name.to_owned()).or_default();
        Ok(())
    }

    fn queues(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.data.lock().queues.keys().cloned().collect())
    }

    fn send_message(&self, queue: &str, message: &QueueMessage) -> Result<(), StoreError> {
        let mut d = self.data.lock();
        let q = d.queues.get_mut(queue).ok_or_else(|| StoreError::NoSuchQueue(queue.to_owned()))?;
        q.push_back(message.clone());
        Ok(())
    }

    fn receive_messages(&self, queue: &str, max: usize) -> Result<Vec<QueueMessage>, StoreError> {
        let mut d = self.data.lock();
        let q = d.queues.get_mut(queue).ok_or_else(|| StoreError::NoSuchQueue(queue.to_owned()))?;
        let n = max.min(q.len());
        Ok(q.drain(..n).collect())
    }

    fn create_topic(&self, name: &str) -> Result<(), StoreError> {
        self.data.lock().topics.entry(name.to_owned()).or_default();
        Ok(())
    }

    fn topics(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.data.lock().topics.keys().cloned().collect())
    }

    fn publish(&self, topic: &str, message: &TopicMessage) -> Result<u64, StoreError> {
        let mut d = self.data.lock();
        let t = d.topics.get_mut(topic).ok_or_else(|| StoreError::NoSuchTopic(topic.to_owned()))?;
        t.push(message.clone());
        Ok(t.len() as u64 - 1)
    }

    fn topic_messages(&self, topic: &str, from: u64, max: usize) -> Result<Vec<(u64, TopicMessage)>, StoreError> {
        let d = self.data.lock();
        let t = d.topics.get(topic).ok_or_else(|| StoreError::NoSuchTopic(topic.to_owned()))?;
        Ok(t.iter().enumerate().skip(from as usize).take(max).map(|(i, m)| (i as u64, m.clone())).collect())
    }
}
