-- Knowledge base schema. {dim} is the embedding dimension, substituted when the migration is applied.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE IF NOT EXISTS knowledge_documents (
    doc_id text PRIMARY KEY,
    tenant text NOT NULL,
    source text NOT NULL,
    tags text[] NOT NULL DEFAULT '{}',
    title text,
    content_type text,
    version bigint NOT NULL,          -- last submitted version
    ready_version bigint,             -- version whose chunks are searchable
    status text NOT NULL,
    error text,
    attempts integer NOT NULL DEFAULT 0,
    chunk_count integer NOT NULL DEFAULT 0,
    updated_at double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS knowledge_documents_tenant_status ON knowledge_documents (tenant, status);

CREATE TABLE IF NOT EXISTS knowledge_chunks (
    id bigserial PRIMARY KEY,
    doc_id text NOT NULL,
    version bigint NOT NULL,
    ordinal integer NOT NULL,
    text text NOT NULL,
    heading text,
    title text,
    tenant text NOT NULL,
    source text NOT NULL,
    tags text[] NOT NULL DEFAULT '{}',
    embedding vector({dim}) NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(heading, '')), 'A') || to_tsvector('english', text)
    ) STORED
);
CREATE INDEX IF NOT EXISTS knowledge_chunks_doc ON knowledge_chunks (doc_id);
CREATE INDEX IF NOT EXISTS knowledge_chunks_tsv ON knowledge_chunks USING gin (tsv);
CREATE INDEX IF NOT EXISTS knowledge_chunks_tags ON knowledge_chunks USING gin (tags);
CREATE INDEX IF NOT EXISTS knowledge_chunks_embedding ON knowledge_chunks USING hnsw (embedding vector_cosine_ops);
