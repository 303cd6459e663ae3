//! The S3 store (`s3://BUCKET/PREFIX`): the [`Store`] trait over `object_store`'s S3 client,
//! bridged from the trait's blocking calls to a small tokio runtime of its own. Objects are
//! `PREFIX/NAME`; a streamed write is a multipart upload whose id is first recorded in a marker
//! object under `PREFIX/.pgkeep/uploads/` (a LIST never shows unfinished multipart uploads), so
//! that a killed run's upload is found by [`Store::unfinished`] and aborted by [`Store::discard`].

mod errors;
pub mod settings;
mod upload;

use std::io::{self, Read};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::runtime::{Handle, Runtime};

pub use settings::{S3Settings, is_s3};
pub use upload::PartPlan;

use crate::model::S3Options;
use crate::storage::store::{
    ErrorKind, ObjectInfo, StorageError, Store, Unfinished, Upload, check_name,
};

pub struct S3Store {
    settings: S3Settings,
    client: Arc<AmazonS3>,
    /// Shut down in the background when dropped (the store may be dropped on a runtime thread).
    rt: Option<Runtime>,
    plan: PartPlan,
}

impl Drop for S3Store {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn other(message: String) -> StorageError {
    StorageError::Backend {
        kind: ErrorKind::Other,
        message,
    }
}

/// The trait's name of an object path under `prefix`, `None` outside it.
fn name_of(prefix: &Path, path: &Path) -> Option<String> {
    let parts: Vec<String> = path
        .prefix_match(prefix)?
        .map(|p| {
            percent_encoding::percent_decode_str(p.as_ref())
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

impl S3Store {
    /// Open the store of `url`, reached as `options` say. Nothing is sent: the first request
    /// (usually [`Store::check_writable`]) finds bad credentials or a missing bucket.
    pub fn open(url: &str, options: &S3Options) -> Result<S3Store, StorageError> {
        let settings = S3Settings::resolve(url, options)?;
        let client = Arc::new(settings.build()?);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pgkeep-s3")
            .enable_all()
            .build()
            .map_err(|e| other(format!("cannot start the S3 client: {e}")))?;
        Ok(S3Store {
            settings,
            client,
            rt: Some(rt),
            plan: PartPlan::DEFAULT,
        })
    }

    /// Cut uploads by `plan` instead of [`PartPlan::DEFAULT`].
    pub fn with_part_plan(mut self, plan: PartPlan) -> S3Store {
        self.plan = plan;
        self
    }

    fn handle(&self) -> &Handle {
        self.rt.as_ref().expect("alive until dropped").handle()
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        upload::block_on(self.handle(), f)
    }

    fn root(&self) -> Path {
        Path::from(self.settings.prefix.as_str())
    }

    /// The object path of a checked name.
    fn path(&self, name: &str) -> Path {
        let mut parts: Vec<String> = Vec::new();
        if !self.settings.prefix.is_empty() {
            parts.push(self.settings.prefix.clone());
        }
        parts.push(name.to_string());
        Path::from_iter(parts.join("/").split('/'))
    }

    fn what(&self, name: &str) -> String {
        format!("s3://{}/{}", self.settings.bucket, self.path(name))
    }

    fn marker_dir(&self) -> Path {
        self.root().clone().join(".pgkeep").join("uploads")
    }

    fn list_under(&self, dir: &Path) -> Result<Vec<object_store::ObjectMeta>, StorageError> {
        let items: Vec<_> = self.block_on(self.client.list(Some(dir)).collect::<Vec<_>>());
        items
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| errors::storage("cannot list", &self.settings.describe(), &e))
    }

    /// The object named by a marker, and its upload id.
    fn read_marker(&self, marker: &Path) -> Result<Option<(String, String)>, StorageError> {
        let body = match self.block_on(async { self.client.get(marker).await?.bytes().await }) {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(errors::storage("cannot read", marker.as_ref(), &e)),
        };
        let text = String::from_utf8_lossy(&body);
        let mut lines = text.lines();
        match (lines.next(), lines.next()) {
            (Some(name), Some(id)) => Ok(Some((name.to_string(), id.to_string()))),
            _ => Ok(None),
        }
    }
}

/// A blocking `Read` over a streaming GET.
struct S3Reader {
    rt: Handle,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    cur: Bytes,
    what: String,
}

impl Read for S3Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match upload::block_on(&self.rt, self.stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => {
                    return Err(errors::storage("cannot read", &self.what, &e).into_io());
                }
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

impl Store for S3Store {
    fn describe(&self) -> String {
        self.settings.describe()
    }

    /// A small PUT and DELETE under `.pgkeep/`, and a LIST: credentials, bucket and
    /// permissions are all checked before a dump starts.
    fn check_writable(&self) -> Result<(), StorageError> {
        let mut rand = [0u8; 8];
        getrandom::fill(&mut rand).map_err(|e| other(format!("no randomness: {e}")))?;
        let probe = self
            .root()
            .clone()
            .join(".pgkeep")
            .join(format!("probe-{}", hex::encode(rand)).as_str());
        let what = self.describe();
        self.block_on(self.client.put(&probe, PutPayload::from_static(b"pgkeep")))
            .map_err(|e| errors::storage("cannot write to", &what, &e))?;
        self.block_on(self.client.delete(&probe))
            .map_err(|e| errors::storage("cannot delete from", &what, &e))?;
        self.list().map(|_| ())
    }

    fn create(&self, name: &str) -> Result<Box<dyn Upload>, StorageError> {
        check_name(name)?;
        if self.stat(name)?.is_some() {
            return Err(StorageError::Exists {
                name: name.to_string(),
            });
        }
        let path = self.path(name);
        let what = self.what(name);
        let upload_id = self
            .block_on(self.client.create_multipart(&path))
            .map_err(|e| errors::storage("cannot start the upload of", &what, &e))?;
        let mut rand = [0u8; 8];
        getrandom::fill(&mut rand).map_err(|e| other(format!("no randomness: {e}")))?;
        let marker = self.marker_dir().join(hex::encode(rand).as_str());
        let body = format!("{name}\n{upload_id}\n");
        if let Err(e) = self.block_on(self.client.put(&marker, body.into())) {
            let _ = self.block_on(self.client.abort_multipart(&path, &upload_id));
            return Err(errors::storage("cannot record the upload of", &what, &e));
        }
        let target = upload::Target {
            rt: self.handle().clone(),
            client: self.client.clone(),
            path,
            marker,
            upload_id,
            what,
        };
        Ok(Box::new(upload::S3Upload::start(target, self.plan)))
    }

    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        check_name(name)?;
        let payload = PutPayload::from_bytes(Bytes::copy_from_slice(data));
        self.block_on(self.client.put(&self.path(name), payload))
            .map(|_| ())
            .map_err(|e| errors::storage("cannot write", &self.what(name), &e))
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        check_name(name)?;
        let what = self.what(name);
        match self.block_on(self.client.get(&self.path(name))) {
            Ok(r) => Ok(Box::new(S3Reader {
                rt: self.handle().clone(),
                stream: r.into_stream(),
                cur: Bytes::new(),
                what,
            })),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound {
                name: name.to_string(),
            }),
            Err(e) => Err(errors::storage("cannot read", &what, &e)),
        }
    }

    fn stat(&self, name: &str) -> Result<Option<ObjectInfo>, StorageError> {
        check_name(name)?;
        match self.block_on(self.client.head(&self.path(name))) {
            Ok(m) => Ok(Some(ObjectInfo {
                name: name.to_string(),
                size: m.size,
                modified: SystemTime::from(m.last_modified),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(errors::storage("cannot stat", &self.what(name), &e)),
        }
    }

    /// Committed objects only: `.pgkeep` names (markers, probes) are the store's own.
    fn list(&self) -> Result<Vec<ObjectInfo>, StorageError> {
        let root = self.root();
        let mut out: Vec<ObjectInfo> = self
            .list_under(&root)?
            .into_iter()
            .filter_map(|m| {
                let name = name_of(&root, &m.location)?;
                check_name(&name).ok()?;
                Some(ObjectInfo {
                    name,
                    size: m.size,
                    modified: SystemTime::from(m.last_modified),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        check_name(name)?;
        match self.block_on(self.client.delete(&self.path(name))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(errors::storage("cannot delete", &self.what(name), &e)),
        }
    }

    /// Every upload recorded by a marker: in progress here, or left by a killed run.
    fn unfinished(&self) -> Result<Vec<Unfinished>, StorageError> {
        let mut out = Vec::new();
        for m in self.list_under(&self.marker_dir())? {
            if let Some((name, _)) = self.read_marker(&m.location)? {
                out.push(Unfinished {
                    name,
                    handle: format!("s3://{}/{}", self.settings.bucket, m.location),
                    size: 0,
                    modified: SystemTime::from(m.last_modified),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn discard(&self, u: &Unfinished) -> Result<(), StorageError> {
        let prefix = format!("s3://{}/", self.settings.bucket);
        let key = u.handle.strip_prefix(&prefix).ok_or_else(|| {
            other(format!(
                "{} is not an upload marker of {}",
                u.handle,
                self.describe()
            ))
        })?;
        let marker = Path::from(key);
        if marker.prefix_match(&self.marker_dir()).is_none() {
            return Err(other(format!(
                "{} is not an upload marker of {}",
                u.handle,
                self.describe()
            )));
        }
        if let Some((name, id)) = self.read_marker(&marker)? {
            let path = self.path(&name);
            match self.block_on(self.client.abort_multipart(&path, &id)) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) if errors::kind(&e) == ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(errors::storage(
                        "cannot abort the upload of",
                        &self.what(&name),
                        &e,
                    ));
                }
            }
        }
        match self.block_on(self.client.delete(&marker)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(errors::storage("cannot delete", &u.handle, &e)),
        }
    }

    fn free_bytes(&self) -> Option<u64> {
        None
    }
}
