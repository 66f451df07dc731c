-- M31: every failed platform attempt is classified (one taxonomy for every platform), with
-- the platform's own reason code beside the message.
ALTER TABLE distribution_platform_status
    ADD COLUMN error_class text
        CONSTRAINT distribution_platform_status_error_class_check
        CHECK (error_class IN ('transient', 'permanent', 'auth', 'quota', 'media', 'policy')),
    ADD COLUMN reason_code text;
