-- Document ids are unique per tenant: two tenants' documents of the same id never touch each other.
-- Rows from before tenants keep their tenant (the default tenant for everything uploaded without one).
ALTER TABLE knowledge_documents DROP CONSTRAINT IF EXISTS knowledge_documents_pkey;
ALTER TABLE knowledge_documents ADD PRIMARY KEY (tenant, doc_id);
CREATE INDEX IF NOT EXISTS knowledge_chunks_tenant_doc ON knowledge_chunks (tenant, doc_id);
