//! What enqueue needs to know of every cached template — its category, its status and its
//! parsed definition — held in memory, so that a template message is checked without a store
//! read. Loaded from the store on first use; every committed change of the store's templates is
//! recorded here with [`Heads::remember`].

use crate::model::Category;
use crate::store::{Store, StoreError, TemplateRecord};
use mynah_wire::template::TemplateDefinition;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// One cached template as enqueue sees it.
#[derive(Debug, Clone)]
pub struct Head {
    /// Its category.
    pub category: Category,
    /// Its status as the platform says it (`APPROVED`, `PAUSED`, …).
    pub status: String,
    /// Its definition, when the cached components could be read (a template the cache only
    /// learned of from a status webhook or an error code has none).
    pub definition: Option<Arc<TemplateDefinition>>,
}

/// name → language → head.
type HeadMap = HashMap<String, HashMap<String, Head>>;

/// The in-memory heads of every cached template.
#[derive(Debug, Default)]
pub struct Heads {
    map: RwLock<Option<HeadMap>>,
    /// Bumped by every change: a load that raced one is redone.
    generation: AtomicU64,
}

impl Heads {
    /// A template's head (`None`: not in the cache).
    pub async fn get<S: Store>(
        &self,
        store: &S,
        name: &str,
        language: &str,
    ) -> Result<Option<Head>, StoreError> {
        let find = |m: &HeadMap| m.get(name).and_then(|l| l.get(language)).cloned();
        loop {
            if let Some(m) = self.map.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
                return Ok(find(m));
            }
            let generation = self.generation.load(Ordering::Acquire);
            let all = store.templates().await?;
            let mut w = self.map.write().unwrap_or_else(|e| e.into_inner());
            if w.is_none() && self.generation.load(Ordering::Acquire) == generation {
                let mut m = HeadMap::new();
                for t in &all {
                    insert(&mut m, t);
                }
                *w = Some(m);
            }
        }
    }

    /// Records committed template changes.
    pub fn remember(&self, records: &[TemplateRecord]) {
        let mut w = self.map.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(m) = w.as_mut() {
            for t in records {
                insert(m, t);
            }
        }
    }
}

fn insert(m: &mut HeadMap, t: &TemplateRecord) {
    m.entry(t.name.clone()).or_default().insert(
        t.language.clone(),
        Head {
            category: t.category,
            status: t.status.clone(),
            definition: definition(t).map(Arc::new),
        },
    );
}

/// The definition of a cached template, from its listed components.
pub fn definition(t: &TemplateRecord) -> Option<TemplateDefinition> {
    let components: serde_json::Value = serde_json::from_str(&t.components).ok()?;
    if components.as_array().is_none_or(|c| c.is_empty()) {
        return None;
    }
    let mut body = serde_json::json!({
        "name": t.name,
        "language": t.language,
        "category": t.category.as_str().to_ascii_uppercase(),
        "components": components,
    });
    if let (Some(f), Some(obj)) = (&t.parameter_format, body.as_object_mut()) {
        obj.insert(
            "parameter_format".into(),
            serde_json::Value::String(f.clone()),
        );
    }
    let bytes = serde_json::to_vec(&body).ok()?;
    mynah_wire::template::parse_listed(&bytes).ok()
}
